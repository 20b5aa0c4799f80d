"""Data parallelism over a 1-D ``Mesh`` named ``"data"``: batches sharded on axis 0, the rest
replicated; multi-host runs call :func:`initialize_distributed` first."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Shard the leading (batch) axis over the mesh, replicate the rest."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def pad_batch(x: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
    """Pad axis 0 of ``x`` with zeros up to a multiple of ``multiple``; return (padded, n_valid)."""
    n = x.shape[0]
    target = max(multiple, -(-n // multiple) * multiple)
    if target == n:
        return x, n
    pad = np.zeros((target - n, *x.shape[1:]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=0), n


def initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-host run through ``jax.distributed`` when a coordinator is given."""
    if coordinator_address:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )


TEXT_BYTES = 512


def allgather_text(texts: list[str], share: int) -> list[str]:
    """Every process's ``texts`` (``share`` each, ``""``-padded, truncated), in process order."""
    from jax.experimental import multihost_utils

    buf = np.zeros((share, TEXT_BYTES), np.uint8)
    for i, t in enumerate(texts):
        raw = t.encode()[: TEXT_BYTES - 4]
        buf[i, : len(raw)] = np.frombuffer(raw, np.uint8)
    every = np.asarray(multihost_utils.process_allgather(buf)).reshape(-1, TEXT_BYTES)
    return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in every]


def barrier(name: str) -> None:
    """Wait for every process of a multi-host run (nothing on one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def my_share(items: list) -> tuple[list, int]:
    """``(items[p * share : (p + 1) * share], share)`` for this process ``p``."""
    n = jax.process_count()
    share = -(-len(items) // n)
    me = jax.process_index()
    return items[me * share : (me + 1) * share], share
