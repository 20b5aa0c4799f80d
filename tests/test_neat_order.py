"""NEAT's caption order: the shuffled DataLoader of its main_TTA.py, reproduced without torch."""

from __future__ import annotations

import numpy as np
import pytest

from drc_jax.neat import loader_order, order_sha256, randperm


@pytest.mark.parametrize("n", [1, 2, 7, 300, 2501])
def test_randperm_equals_torch_randperm_with_a_seeded_generator(n):
    import torch

    for seed in (0, 1, 2**31 + 5):
        want = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        np.testing.assert_array_equal(randperm(n, seed), want)


@pytest.mark.parametrize("seed", [0, 1, 2, 123457])
def test_loader_order_equals_neat_loaders_after_manual_seed(seed):
    """As main_TTA.py runs: ``torch.manual_seed(seed)``, the (shuffled) image loader iterated to
    the end, then the caption loader (shuffle=True, drop_last=False): its batches concatenated."""
    import torch
    from torch.utils.data import DataLoader

    n_images, n_captions = 23, 117
    torch.manual_seed(seed)
    for _ in DataLoader(list(range(n_images)), batch_size=8, shuffle=True, drop_last=False):
        pass
    batches = DataLoader(list(range(n_captions)), batch_size=16, shuffle=True, drop_last=False)
    want = torch.cat(list(batches)).numpy()
    np.testing.assert_array_equal(loader_order(n_captions, seed), want)


def test_seeds_give_different_orders_and_the_hash_names_order_and_captions():
    captions = [f"caption {i}" for i in range(50)]
    a, b = loader_order(50, 0), loader_order(50, 1)
    assert sorted(a) == list(range(50)) and not np.array_equal(a, b)
    assert order_sha256(a, captions) == order_sha256(loader_order(50, 0), captions)
    assert order_sha256(a, captions) != order_sha256(b, captions)
    assert order_sha256(a, captions) != order_sha256(a, [c.upper() for c in captions])
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        loader_order(5, -1)
