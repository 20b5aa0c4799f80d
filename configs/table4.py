"""Paper Table 4: sensitivity to the repulsion scale rho (w_rep = w_base * rho); paper: 1.5.

Rows are named ``rho_<value>`` with ``_`` for the decimal point (``rho_0_5``), so that a row can
be overridden from the command line: ``--config.variants.rho_0_5.params.rho=0.4``.

rho = 0 vs Table 3's "+ dctx" row: the paper's text says the two coincide (no repulsion, all three
angular terms), but its printed numbers differ, so its rho=0 row cannot be the "+ dctx" row it
describes. Here they coincide by construction: ``w_rep = w_base * rho`` is 0 for every query, and
the ranking is that of "+ dctx" (tests/test_launch_tables.py checks it query by query).
"""

from drc_jax.launch.config import base_config, paper_protocol, row

RHOS = (0.0, 0.5, 1.0, 1.5, 2.0)


def get_config():
    config = paper_protocol(base_config())  # --decomposer sglang: the paper's protocol
    config.name = "table4"
    config.description = "Table 4: DRC with rho in " + ", ".join(map(str, RHOS))
    config.variants.clip = row("clip", "CLIP")
    names = []
    for r in RHOS:
        names.append("rho_" + f"{r:g}".replace(".", "_"))
        config.variants[names[-1]] = row("drc", f"DRC rho={r}", rho=r)
    config.rows = ("clip", *names)
    return config
