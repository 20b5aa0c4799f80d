"""Paired bootstrap confidence intervals of a row's R@K change against CLIP (results.md)."""

from __future__ import annotations

import numpy as np
import pytest

from drc_jax.metrics import paired_bootstrap


def _ranks(hit: np.ndarray) -> np.ndarray:
    """Ranks that hit at every K exactly where ``hit`` (rank 1) and miss everywhere else."""
    return np.where(hit, 1, 50)


def test_the_interval_is_deterministic_for_a_seed_and_moves_with_it():
    rng = np.random.default_rng(1)
    a, b = rng.integers(1, 30, 500), rng.integers(1, 30, 500)
    first = paired_bootstrap(a, b, resamples=300, seed=7)
    assert first == paired_bootstrap(a, b, resamples=300, seed=7)
    assert first != paired_bootstrap(a, b, resamples=300, seed=8)
    # The point estimate is the observed change, whatever the seed.
    for k in (1, 5, 10):
        observed = 100 * (np.mean(b <= k) - np.mean(a <= k))
        assert first[f"R@{k}"]["delta"] == pytest.approx(observed)
        assert first[f"R@{k}"]["lo"] <= observed <= first[f"R@{k}"]["hi"]


def test_95_percent_intervals_cover_the_true_change_about_95_percent_of_the_time():
    """200 simulated benchmarks whose true R@1 change is +10 points (hit rates 0.3 vs 0.4, paired
    through a shared latent so the pairing matters): the interval must cover +10 in 88-99% of
    them (a binomial 99.9% band around 95% for 200 trials)."""
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        u = rng.random(300)
        base, new = _ranks(u < 0.3), _ranks(u < 0.4)  # paired: new hits wherever base hits
        ci = paired_bootstrap(base, new, ks=(1,), resamples=400, seed=trial)["R@1"]
        covered += ci["lo"] <= 10.0 <= ci["hi"]
    assert 176 <= covered <= 198, covered


def test_identical_rankings_give_a_zero_width_interval():
    r = np.arange(1, 101)
    ci = paired_bootstrap(r, r, resamples=50)
    assert all(v == {"delta": 0.0, "lo": 0.0, "hi": 0.0} for v in ci.values())


def test_resampling_in_blocks_gives_the_same_interval_as_in_one_go():
    rng = np.random.default_rng(2)
    a, b = rng.integers(1, 20, 200), rng.integers(1, 20, 200)
    assert paired_bootstrap(a, b, resamples=250, block=7) == paired_bootstrap(
        a, b, resamples=250, block=250
    )


def test_unpaired_or_empty_ranks_are_refused():
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(np.ones(0), np.ones(0))
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap(np.ones(3), np.ones(3), resamples=0)
