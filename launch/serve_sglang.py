"""Start an SGLang server for the LLM decomposer: ``python -m launch.serve_sglang [--model PATH]``.

A checkout's script; the logic (and its documentation) is :mod:`drc_jax.decompose.serve`, which an
installed drc-jax runs as ``python -m drc_jax.decompose.serve``.
"""

from drc_jax.decompose.serve import run

if __name__ == "__main__":
    run()
