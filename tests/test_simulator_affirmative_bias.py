"""The method working without weights: on a simulated NegBench-style set with CLIP's affirmative
bias built in, DRC must beat CLIP (benchmarks/simulator.py; a small version of its report)."""

from __future__ import annotations

import pytest

from benchmarks.simulator import SimConfig, evaluate, simulate


@pytest.fixture(scope="module")
def results():
    sim = simulate(SimConfig(n_images=300, dim=64, captions_per_image=3, seed=0))
    assert len(sim.queries) == 900
    return evaluate(sim, ("clip", "spacevlm", "drc", "drc_paper_eq8"))


def test_simulated_clip_shows_affirmative_bias(results):
    # Captions embed the negated concept too, so CLIP's top 5 is full of images showing it.
    assert results["clip"]["neg@5"] > 30.0


def test_drc_beats_clip_and_spacevlm_on_simulated_negbench(results):
    clip, spacevlm, drc = results["clip"], results["spacevlm"], results["drc"]
    for k in ("R@1", "R@5", "R@10"):
        assert drc[k] > clip[k] + 5.0, k
        assert drc[k] > spacevlm[k], k
    assert drc["medR"] < clip["medR"]
    assert drc["neg@5"] < clip["neg@5"] / 3


def test_printed_eq8_sign_retrieves_more_images_with_the_negated_concept(results):
    assert results["drc_paper_eq8"]["neg@5"] > results["drc"]["neg@5"] + 1.0
    assert results["drc_paper_eq8"]["R@5"] < results["drc"]["R@5"]
