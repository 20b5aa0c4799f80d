"""Caption decomposition for a run: rules, an SGLang server, or a precomputed JSONL."""

from __future__ import annotations

from pathlib import Path

from drc_jax.defaults import DECOMPOSITIONS, cache_path
from drc_jax.errors import UserError
from drc_jax.launch.config import RunOptions
from drc_jax.launch.stages import Decomposed
from drc_jax.progress import progress_bar


def decompose(captions: list[str], opts: RunOptions) -> Decomposed:
    """One Decomposition per caption, each unique caption decomposed once (sglang: cached)."""
    from drc_jax.decompose import (
        SGLangRequestError,
        get_decomposer,
        load_decompositions_jsonl,
    )

    unique = list(dict.fromkeys(captions))
    if opts.decompositions:
        path = Path(opts.decompositions).expanduser()
        if not path.is_file():
            raise UserError(f"--decompositions {path}: no such file (a JSONL of decompositions).")
        try:
            loaded = load_decompositions_jsonl(path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"--decompositions {path}: {e}") from e
        table = loaded if isinstance(loaded, dict) else {d.caption: d for d in loaded}
        missing = [c for c in unique if c not in table]
        if missing:
            raise UserError(
                f"--decompositions {path} lacks {len(missing)} of {len(unique)} captions, e.g. "
                f"{missing[0]!r}. Regenerate it for this CSV, or drop --decompositions."
            )
        decs = [table[c] for c in unique]
        source = {"decomposer": f"jsonl:{path}"}
    else:
        try:
            if opts.decomposer == "sglang":
                kwargs = {"url": opts.sglang_url, "mode": opts.decomposer_mode}
                if opts.sglang_model:
                    kwargs["model"] = opts.sglang_model
                # "" turns the client's cache off (its None would mean the default directory).
                kwargs["cache_dir"] = str(cache_path(DECOMPOSITIONS, opts.cache_dir) or "")
                d = get_decomposer("sglang", **kwargs)
            else:
                d = get_decomposer(opts.decomposer)
        except (ValueError, OSError, ConnectionError) as e:
            raise UserError(f"--decomposer {opts.decomposer}: {e}") from e
        decs = []
        bar = progress_bar(len(unique), f"decomposing ({opts.decomposer})", opts.progress)
        step = 1024 if opts.decomposer == "sglang" else 256  # sglang: concurrent within a batch
        try:
            for lo in range(0, len(unique), step):
                chunk = unique[lo : lo + step]
                decs += d.decompose(chunk)
                bar.update(len(chunk))
        except ConnectionError as e:
            raise UserError(
                f"--decomposer sglang: cannot reach the SGLang server at {opts.sglang_url} ({e}). "
                "Start it (see the README), pass --sglang_url, use --decompositions with a "
                "precomputed JSONL, or --decomposer rules. Finished answers are cached."
            ) from e
        except SGLangRequestError as e:
            raise UserError(
                f"--decomposer sglang: the server at {opts.sglang_url} rejected every request "
                f"({e}). Check --sglang_model against the model the server was started with."
            ) from e
        finally:
            bar.close()
            d.close()
        source = {"decomposer": opts.decomposer, **d.stats}
    by_caption = dict(zip(unique, decs, strict=True))
    return Decomposed(tuple(by_caption[c] for c in captions), source)
