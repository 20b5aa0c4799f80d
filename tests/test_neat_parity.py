"""NEAT in JAX (drc_jax.neat) against a PyTorch transcription of the reference's test-time
adaptation (tests/neat_reference.py), on the same tiny random transformers CLIP."""

from __future__ import annotations

import copy
import dataclasses
import json

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from drc_jax.clip import load_clip
from drc_jax.neat import (
    NEATConfig,
    NEATTexts,
    adapt_batch,
    adapted_params,
    init_state,
    neat_loss,
    neat_scores,
    neat_scores_from_decompositions,
    neat_texts,
    pre_caption,
)
from tests.clip_fixtures import make_hf_clip
from tests.conftest import run_with_devices

SUBJECTS = ["dog", "man", "woman", "child", "cat", "horse", "bus", "bird", "girl", "boy"]
PLACES = ["beach", "street", "kitchen", "field", "park", "room", "bridge", "lake", "shop"]
ABSENT = ["umbrella", "car", "bench", "kite", "table", "frisbee", "tree", "cup", "phone"]


def negated_rows(n: int, seed: int = 0):
    """Negated captions with their NEAT texts (pos = affirmative part, neg = the negated concept,
    inv = the caption with the concept present), varied so each row tokenises differently."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        s, p, a = rng.choice(SUBJECTS), rng.choice(PLACES), rng.choice(ABSENT)
        aff = f"A {s} in a {p}"
        rows.append((f"{aff}, but no {a}.", aff, a, f"{aff} with a {a}"))
    return [list(c) for c in zip(*rows, strict=True)]


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_clip")
    model = make_hf_clip(d, tiny=True, seed=3)
    clip = load_clip(d, use_cache=False)
    return model, clip


def _torch_ids(clip, texts):
    import torch

    return torch.from_numpy(clip.tokenizer(list(texts), length=77).astype(np.int64))


def test_adapted_scores_match_pytorch_reference_over_several_batches(tiny):
    """Online adaptation over 4 batches (3 AdamW steps each, the reference's hyper-parameters):
    every batch's scores and the final LayerNorms agree with the PyTorch transcription."""
    import torch

    from tests.neat_reference import TorchNEAT, text_layer_norm_params

    model, clip = tiny
    cfg = NEATConfig(batch_size=6)
    captions, pos, neg, inv = negated_rows(24)
    images = unit_rows(20, clip.embed_dim, seed=1)

    ours = neat_scores(clip, images, captions, pos, neg, inv, cfg)

    texts = NEATTexts.from_lists(captions, pos, neg, inv).preprocessed()
    ref = TorchNEAT(copy.deepcopy(model), torch.from_numpy(images))
    theirs = []
    for lo in range(0, 24, 6):
        groups = (texts.captions, texts.pos, texts.neg, texts.inv)
        ids = [_torch_ids(clip, g[lo : lo + 6]) for g in groups]
        scores, _ = ref.adapt_batch(*ids)
        theirs.append(scores.numpy())
    theirs = np.concatenate(theirs)
    plain = clip.encode_texts(list(texts.captions)) @ images.T

    assert ours.shape == (24, 20)
    np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)
    # the adaptation moved the scores far beyond the tolerance (the comparison is not vacuous)
    assert np.abs(theirs - plain).max() > 50 * 2e-5
    assert np.abs(theirs[:6] - plain[:6]).max() < np.abs(theirs[18:] - plain[18:]).max()

    # final LayerNorms: run the same stream through the JAX state API and compare parameters
    state = init_state(clip, cfg)
    for lo in range(0, 24, 6):
        part = NEATTexts(*(g[lo : lo + 6] for g in groups), texts.negated[lo : lo + 6])
        state, _, _ = adapt_batch(clip, state, part, images, cfg)
    enc = flatten_dict(state.ln)
    torch_ln = [p.detach().numpy() for p in text_layer_norm_params(ref.model)]
    ours_ln = [
        np.asarray(enc[(f"layers_{i}", n, w)])
        for i in range(clip.config.text.num_hidden_layers)
        for n in ("layer_norm1", "layer_norm2")
        for w in ("scale", "bias")
    ]
    initial = flatten_dict(init_state(clip, cfg).ln)
    moved = max(float(np.abs(np.asarray(enc[k]) - np.asarray(initial[k])).max()) for k in enc)
    assert moved > 1e-3  # 12 AdamW steps of lr 2e-4 move some parameter by ~lr per step
    for a, b in zip(ours_ln, torch_ln, strict=True):
        np.testing.assert_allclose(a, b, atol=3e-6, rtol=0)


def test_loss_terms_match_pytorch_reference(tiny):
    """The three loss terms of the first step equal the transcription's."""
    import torch

    from tests.neat_reference import TorchNEAT

    model, clip = tiny
    captions, pos, neg, inv = negated_rows(8, seed=5)
    images = unit_rows(11, clip.embed_dim, seed=2)
    texts = NEATTexts.from_lists(captions, pos, neg, inv)
    feats = [clip.encode_texts(list(g)) for g in (texts.captions, texts.pos, texts.neg, texts.inv)]
    _, aux = neat_loss(*feats, images, np.ones(8, bool), NEATConfig())
    ref = TorchNEAT(copy.deepcopy(model), torch.from_numpy(images))
    ids = [_torch_ids(clip, g) for g in (texts.captions, texts.pos, texts.neg, texts.inv)]
    _, terms = ref.step(*ids)
    for k in ("entropy", "semantics_reversion", "triplet"):
        assert float(aux[k]) == pytest.approx(terms[k], abs=1e-5), k
    assert terms["entropy"] > 0 and terms["semantics_reversion"] > 0 and terms["triplet"] > 0


def test_only_residual_block_text_layer_norms_change(tiny):
    """After adaptation exactly the text encoder's layer_norm1/layer_norm2 scales and biases
    differ from the loaded weights; the final LayerNorm, the projections and the whole image
    tower are bit-for-bit unchanged, and the loaded encoder itself is not modified."""
    _, clip = tiny
    before = {k: np.array(v) for k, v in flatten_dict(clip.params).items()}
    captions, pos, neg, inv = negated_rows(8, seed=7)
    state, _, _ = adapt_batch(
        clip,
        init_state(clip, NEATConfig()),
        NEATTexts.from_lists(captions, pos, neg, inv),
        unit_rows(9, clip.embed_dim, seed=3),
        NEATConfig(),
    )
    after = flatten_dict(adapted_params(clip, state))
    assert after.keys() == before.keys()
    changed = {k for k in before if not np.array_equal(before[k], np.asarray(after[k]))}
    expected = {
        ("text_model", "encoder", f"layers_{i}", n, w)
        for i in range(clip.config.text.num_hidden_layers)
        for n in ("layer_norm1", "layer_norm2")
        for w in ("scale", "bias")
    }
    assert changed == expected
    for k, v in flatten_dict(clip.params).items():
        np.testing.assert_array_equal(np.asarray(v), before[k])


def test_state_carries_over_between_batches(tiny):
    """Online: batch 2 starts from batch 1's LayerNorms and AdamW moments. Restarting from the
    loaded weights for each batch gives the same first batch and different later ones."""
    _, clip = tiny
    cfg = NEATConfig(batch_size=6)
    captions, pos, neg, inv = negated_rows(12, seed=9)
    images = unit_rows(10, clip.embed_dim, seed=4)
    online = neat_scores(clip, images, captions, pos, neg, inv, cfg)
    reset = np.concatenate(
        [
            neat_scores(clip, images, *(x[lo : lo + 6] for x in (captions, pos, neg, inv)), cfg)
            for lo in (0, 6)
        ]
    )
    np.testing.assert_allclose(online[:6], reset[:6], atol=1e-6)
    assert np.abs(online[6:] - reset[6:]).max() > 1e-4

    # the optimiser state matters too, not only the LayerNorms: carrying the LayerNorms with a
    # fresh AdamW differs from the online run on batch 2
    texts = NEATTexts.from_lists(captions, pos, neg, inv).preprocessed()
    halves = [
        NEATTexts(
            *(g[lo : lo + 6] for g in (texts.captions, texts.pos, texts.neg, texts.inv)),
            texts.negated[lo : lo + 6],
        )
        for lo in (0, 6)
    ]
    state, _, _ = adapt_batch(clip, init_state(clip, cfg), halves[0], images, cfg)
    fresh_opt = init_state(clip, cfg)
    fresh_opt.ln = jax.tree.map(np.array, state.ln)
    _, second, _ = adapt_batch(clip, fresh_opt, halves[1], images, cfg)
    assert np.abs(second - online[6:]).max() > 1e-5


def test_captions_without_negation_ignore_neg_and_inv():
    """A row with negated=False: its neg/inv embeddings change neither the loss nor its gradient
    (and get none back), and it aligns with the image closest to its pos text (the caption)."""
    b, d, n = 6, 16, 9
    text, pos, neg, inv = (unit_rows(b, d, seed=s) for s in range(4))
    images = unit_rows(n, d, seed=10)
    negated = np.array([True, True, False, True, False, True])
    cfg = NEATConfig()

    def grad(neg, inv):
        f = lambda *x: neat_loss(*x, images, negated, cfg)[0]  # noqa: E731
        return jax.value_and_grad(f, argnums=(0, 1, 2, 3))(text, pos, neg, inv)

    loss_a, g_a = grad(neg, inv)
    # neg only steers the (no-grad) alignment; inv gets gradient on negated rows only
    np.testing.assert_array_equal(np.asarray(g_a[2]), 0.0)
    np.testing.assert_array_equal(np.asarray(g_a[3])[~negated], 0.0)
    assert np.abs(np.asarray(g_a[3])[negated]).max() > 0
    neg2, inv2 = neg.copy(), inv.copy()
    neg2[~negated] = unit_rows(2, d, seed=20)
    inv2[~negated] = unit_rows(2, d, seed=21)
    loss_b, g_b = grad(neg2, inv2)
    assert float(loss_a) == pytest.approx(float(loss_b), abs=1e-6)
    for a, c in zip(jax.tree.leaves(g_a), jax.tree.leaves(g_b), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-6)
    # ... while a negated row's inv does change it
    inv3 = inv.copy()
    inv3[0] = unit_rows(1, d, seed=22)[0]
    assert abs(float(grad(neg, inv3)[0]) - float(loss_a)) > 1e-4
    _, aux = neat_loss(text, pos, neg, inv, images, negated, cfg)
    np.testing.assert_array_equal(
        np.asarray(aux["aligned"])[~negated], np.argmax(pos @ images.T, axis=1)[~negated]
    )


def test_bad_texts_name_the_row():
    """A row with neg but no inv (or an empty pos) is rejected with its index and caption."""
    with pytest.raises(ValueError, match=r"caption 1 \('b but no c'\).*neg='c' and inv=None"):
        NEATTexts.from_lists(["a", "b but no c"], ["a", "b"], [None, "c"], [None, None])
    with pytest.raises(ValueError, match=r"caption 0 \('a'\): pos is empty"):
        NEATTexts.from_lists(["a", "b"], ["", "b"], [None, None], [None, None])
    with pytest.raises(ValueError, match="one inv text per caption: 1 for 2"):
        NEATTexts.from_lists(["a", "b"], ["a", "b"], [None, None], [None])


def test_sharded_adaptation_matches_single_device():
    """NEAT over an 8-device mesh (text rows sharded) gives the single-device scores."""
    out = run_with_devices(
        """
        import json
        import jax, numpy as np
        from drc_jax.clip import load_clip
        from drc_jax.neat import NEATConfig, neat_scores
        from drc_jax.parallel import make_mesh
        from tests.test_neat_parity import negated_rows, unit_rows

        assert jax.device_count() == 8
        sharded = load_clip("random:test-tiny", use_cache=False)
        single = load_clip("random:test-tiny", use_cache=False, mesh=make_mesh(jax.devices()[:1]))
        rows = negated_rows(13, seed=11)  # batches of 6, 6 (24 text rows each: sharded), 1
        rows[2][3] = rows[3][3] = None     # one caption without negation
        rows[1][3] = rows[0][3]
        images = unit_rows(10, sharded.embed_dim, seed=5)
        cfg = NEATConfig(batch_size=6)
        a = neat_scores(sharded, images, *rows, cfg)
        b = neat_scores(single, images, *rows, cfg)
        print(json.dumps({"diff": float(np.abs(a - b).max()), "shape": list(a.shape)}))
        """
    )
    res = json.loads(out.strip().splitlines()[-1])
    assert res["shape"] == [13, 10]
    assert res["diff"] < 1e-5, res


def test_bfloat16_adaptation_keeps_float32_layer_norms_and_tracks_float32(tiny):
    """In bf16 mode the matmuls run in bf16 while the adapted LayerNorms and AdamW state stay
    float32; the scores stay close to the float32 run's."""
    _, clip32 = tiny
    captions, pos, neg, inv = negated_rows(12, seed=13)
    images = unit_rows(10, clip32.embed_dim, seed=6)
    cfg = NEATConfig(batch_size=6)
    clip16 = dataclasses.replace(clip32, dtype="bfloat16")
    a = neat_scores(clip32, images, captions, pos, neg, inv, cfg)
    b = neat_scores(clip16, images, captions, pos, neg, inv, cfg)
    assert 0 < np.abs(a - b).max() < 2e-2
    state = init_state(clip16, cfg)
    texts = NEATTexts.from_lists(captions[:6], pos[:6], neg[:6], inv[:6])
    state, _, _ = adapt_batch(clip16, state, texts, images, cfg)
    assert {x.dtype for x in jax.tree.leaves((state.ln, state.opt_state))} <= {
        np.dtype("float32"),
        np.dtype("int32"),  # AdamW's step count
    }


def test_decompositions_map_to_pos_neg_inv(tiny):
    """From decompositions: a negated caption adapts with (aff, neg, cf), one without negation
    with pos = caption and no neg/inv; the scores equal those from the explicit lists."""
    from drc_jax.decompose import Decomposition

    _, clip = tiny
    captions, pos, neg, inv = negated_rows(5, seed=17)
    decs = [
        Decomposition(c, True, p, g, v, "strong")
        for c, p, g, v in zip(captions, pos, neg, inv, strict=True)
    ] + [Decomposition.plain("Two horses in a field.")]
    images = unit_rows(8, clip.embed_dim, seed=7)
    cfg = NEATConfig(batch_size=3)
    got = neat_scores_from_decompositions(clip, images, decs, cfg)
    want = neat_scores(
        clip,
        images,
        [*captions, "Two horses in a field."],
        [*pos, "Two horses in a field."],
        [*neg, None],
        [*inv, ""],
        cfg,
    )
    np.testing.assert_array_equal(got, want)
    assert neat_texts(decs).negated.tolist() == [True] * 5 + [False]


def test_pre_caption_normalises_like_the_reference_loader():
    """Lower-case, the reference's punctuation set to spaces, single spaces, stripped, 77 words."""
    assert pre_caption('A dog; not a "Cat".  On (the) beach!') == "a dog not a cat on the beach"
    assert pre_caption("Commas, hyphens-and apostrophes' stay") == (
        "commas, hyphens-and apostrophes' stay"
    )
    assert pre_caption(" ".join(["w"] * 80)) == " ".join(["w"] * 77)


def test_neat_on_its_own_csv_matches_the_reference_loader_in_texts_order_and_scores(
    tiny, negbench_dir, tmp_path
):
    """NEAT's logic-inversion CSV through the launcher's text builder and the JAX NEAT with
    ``seed=3``, against the transcription of NEAT's loader (its dataset, ``pre_caption``,
    ``torch.manual_seed(3)`` and shuffled DataLoaders): the same texts, the same caption order and
    the same scores over 4 batches."""
    import torch

    from drc_jax.data.neat_csv import load_neat_csv
    from drc_jax.data.negbench import load_coco_neg
    from drc_jax.launch.config import Variant
    from drc_jax.launch.neat_rows import row_texts
    from drc_jax.neat import loader_order, neat_scores_for_texts
    from tests.neat_fixtures import write_neat_csv
    from tests.neat_reference import TorchNEAT, run_neat_loader
    from tests.test_launch_end_to_end import _first_rows

    model, clip = tiny
    rows = _first_rows(negbench_dir / "coco_neg_dev.csv", tmp_path / "q.csv", 5)
    write_neat_csv(rows, tmp_path / "neat.csv")
    bench = load_coco_neg(tmp_path / "q.csv")
    csv_texts = load_neat_csv(tmp_path / "neat.csv", bench)
    lists, source = row_texts(Variant("neat", "neat"), None, bench.queries, csv_texts)
    assert source["source"] == "neat_csv"
    texts = NEATTexts.from_lists(*lists)
    n = len(texts)
    assert 3 * 8 < n <= 4 * 8  # batches of 8: three full ones and a shorter last one
    images = unit_rows(12, clip.embed_dim, seed=8)
    ours = neat_scores_for_texts(clip, images, texts, NEATConfig(batch_size=8), seed=3)

    ref = TorchNEAT(copy.deepcopy(model), torch.from_numpy(images))
    theirs, order, data = run_neat_loader(
        ref, lambda ts: _torch_ids(clip, ts), tmp_path / "neat.csv", seed=3, batch_size=8
    )
    pre = texts.preprocessed()
    assert list(pre.captions) == data.text and list(pre.pos) == data.pos_text
    assert list(pre.neg) == data.neg_text and list(pre.inv) == data.inv_text
    assert order == loader_order(n, 3).tolist() and order != sorted(order)
    np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)
    in_csv_order = neat_scores_for_texts(clip, images, texts, NEATConfig(batch_size=8))
    assert np.abs(in_csv_order - theirs).max() > 50 * 2e-5  # the order is not vacuous
