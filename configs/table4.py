"""Paper Table 4: sensitivity to the repulsion scale rho (w_rep = w_base * rho); paper: 1.5.

Rows are named ``rho_<value>`` with ``_`` for the decimal point (``rho_0_5``), so that a row can
be overridden from the command line: ``--config.variants.rho_0_5.params.rho=0.4``.
"""

from drc_jax.launch.config import base_config, row

RHOS = (0.0, 0.5, 1.0, 1.5, 2.0)


def get_config():
    config = base_config()
    config.name = "table4"
    config.description = "Table 4: DRC with rho in " + ", ".join(map(str, RHOS))
    config.variants.clip = row("clip", "CLIP")
    names = []
    for r in RHOS:
        names.append("rho_" + f"{r:g}".replace(".", "_"))
        config.variants[names[-1]] = row("drc", f"DRC rho={r}", rho=r)
    config.rows = ("clip", *names)
    return config
