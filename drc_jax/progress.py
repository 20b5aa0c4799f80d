"""The progress bar of every long step (tqdm), off with ``--noprogress``."""

from __future__ import annotations


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "item"):
    """A tqdm bar over ``total`` ``unit``s; a silent one when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)
