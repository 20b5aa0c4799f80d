"""Data-parallel encoding over 8 host devices equals single-device encoding."""

from __future__ import annotations

import json

from tests.conftest import run_with_devices


def test_sharded_encoding_matches_single_device():
    out = run_with_devices(
        """
        import json
        import jax, numpy as np
        from drc_jax.clip import load_clip
        from drc_jax.clip.encoder import _encode_fn
        from drc_jax.parallel import make_mesh

        assert jax.device_count() == 8
        sharded = load_clip("random:test-tiny", use_cache=False, batch_size=16)
        single = load_clip("random:test-tiny", use_cache=False, batch_size=16,
                           mesh=make_mesh(jax.devices()[:1]))
        rng = np.random.default_rng(0)
        px = rng.standard_normal((37, 224, 224, 3)).astype(np.float32)  # 2 full chunks + 5
        texts = [f"a photo of {i} dogs but no cat" for i in range(13)] + ["x " * 90]
        vids = rng.standard_normal((3, 4, 224, 224, 3)).astype(np.float32)
        res = {}
        for name, fn in [("img", lambda c: c.encode_images(px)),
                         ("txt", lambda c: c.encode_texts(texts)),
                         ("vid", lambda c: c.encode_videos(vids))]:
            a, b = fn(sharded), fn(single)
            res[name] = [float(np.abs(a - b).max()), list(a.shape)]
        # every parameter is replicated on all 8 devices, inputs are sharded on the batch axis
        leaf = jax.tree.leaves(sharded.params)[0]
        res["param_devices"] = len(leaf.sharding.device_set)
        f = _encode_fn(sharded.config, "float32", sharded.mesh, "image")
        n_before = f._cache_size()
        sharded.encode_images(px[:16]); sharded.encode_images(px[16:32] * 2)
        res["recompiled"] = f._cache_size() - n_before
        print(json.dumps(res))
        """
    )
    res = json.loads(out.strip().splitlines()[-1])
    assert res["img"][1] == [37, 32] and res["txt"][1] == [14, 32] and res["vid"][1] == [3, 32]
    for name in ("img", "txt", "vid"):
        assert res[name][0] < 1e-5, res
    assert res["param_devices"] == 8
    assert res["recompiled"] == 0  # same padded shape -> compiled once
