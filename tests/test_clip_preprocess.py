"""Image preprocessing against transformers' CLIP image processor and torch's antialiased
bicubic resize, on the real photographs scikit-image ships."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from drc_jax.clip.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, preprocess
from tests.clip_fixtures import photos


def test_openai_mode_matches_transformers_clip_image_processor():
    """Resize is identical to transformers'; the crop offset follows torchvision/OpenAI
    (``round((h - 224) / 2)``), which is one pixel right of transformers' floor when the margin
    is odd (scikit-image's rocket: 335 px wide)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    full = CLIPImageProcessorPil()
    resize_only = CLIPImageProcessorPil(do_center_crop=False)
    odd_margins = 0
    for img in photos():
        ours = preprocess([img], mode="openai")[0]
        resized = resize_only(images=[img], return_tensors="np")["pixel_values"][0]
        resized = resized.transpose(1, 2, 0)
        h, w = resized.shape[:2]
        top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
        np.testing.assert_allclose(ours, resized[top : top + 224, left : left + 224], atol=1e-5)
        if (h - 224) % 2 == 0 and (w - 224) % 2 == 0:
            hf = full(images=[img], return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
            np.testing.assert_allclose(ours, hf, atol=1e-5)
        else:
            odd_margins += 1
    assert odd_margins >= 1


def test_spacevlm_mode_squashes_whole_image_like_antialiased_bicubic():
    """Reference: torch's ``interpolate(bicubic, antialias=True)`` (the algorithm torchvision's
    ``Resize((224, 224), BICUBIC, antialias=True)`` runs on tensors) on the uint8 photo. PIL
    works in fixed point, so a few edge pixels differ by more than one grey level; a different
    filter (bilinear) is several times further off on average, which this test would catch."""
    for img in photos():
        ours = preprocess([img])[0]
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float()
        ref = torch.nn.functional.interpolate(
            x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False
        )
        ref = ref.clamp(0, 255).round()[0].permute(1, 2, 0).numpy()
        ref = (ref / 255.0 - OPENAI_CLIP_MEAN) / OPENAI_CLIP_STD
        diff = np.abs(ours - ref) * OPENAI_CLIP_STD * 255  # in grey levels
        assert diff.mean() < 0.25 and (diff > 1.01).mean() < 1e-3 and diff.max() <= 6.01, (
            img.size,
            diff.max(),
            diff.mean(),
        )
        bilinear = np.asarray(img.resize((224, 224), Image.Resampling.BILINEAR), np.float32)
        assert np.abs(bilinear - ref * OPENAI_CLIP_STD * 255 - OPENAI_CLIP_MEAN * 255).mean() > 0.5


def test_preprocess_returns_nhwc_float32_and_accepts_arrays_and_grayscale():
    imgs = photos()[:3]
    arrs = [np.asarray(i) for i in imgs]
    out = preprocess(imgs)
    assert out.shape == (3, 224, 224, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(preprocess(arrs), out)
    gray = Image.fromarray(np.asarray(imgs[0].convert("L")))
    g = preprocess([gray])[0]
    np.testing.assert_allclose(
        g[..., 0] * OPENAI_CLIP_STD[0] + OPENAI_CLIP_MEAN[0],
        g[..., 1] * OPENAI_CLIP_STD[1] + OPENAI_CLIP_MEAN[1],
        atol=1e-5,
    )
    assert preprocess(imgs * 4).shape[0] == 12  # threaded path keeps order
    np.testing.assert_array_equal(preprocess(imgs * 4)[3:6], out)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown preprocessing mode 'squash'"):
        preprocess(photos()[:1], mode="squash")
    with pytest.raises(TypeError, match="uint8"):
        preprocess([np.zeros((10, 10, 3), np.float32)])
