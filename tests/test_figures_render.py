"""drc_jax.figures: the comparison grid is a readable PNG with the marks it promises."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from drc_jax.figures import GOLD, GREEN, RED, WARN, FigureStyle, FigureTile, render_comparison


def scene(colour, size=(200, 150)) -> Image.Image:
    img = Image.new("RGB", size, colour)
    ImageDraw.Draw(img).ellipse((40, 30, 120, 110), fill=(120, 80, 40))
    return img


def count(img: Image.Image, colour) -> int:
    return int((np.asarray(img.convert("RGB")) == np.asarray(colour)).all(-1).sum())


def test_two_rows_with_red_green_borders_gt_star_and_title(tmp_path):
    style = FigureStyle()
    clip = [FigureTile(scene((240, 220, 160)), "0.31 beach.png", contains_negated=True)] * 3
    drc = [
        FigureTile(scene((90, 170, 90)), "0.28 park.png", contains_negated=False),
        FigureTile(scene((90, 170, 90)), "0.27 park2.png", contains_negated=False),
        FigureTile(scene((90, 170, 90)), "0.25 gt.png", False, is_ground_truth=True),
    ]
    out = render_comparison(
        tmp_path / "f.png", "a dog not on a beach", {"CLIP": clip, "DRC": drc}, style=style
    )
    img = Image.open(out)
    assert img.format == "PNG"
    cell = style.tile + 2 * style.border
    assert img.width == 2 * style.margin + style.row_label_width + 3 * cell + 2 * style.gap
    arr = np.asarray(img.convert("RGB"))
    top_half, bottom_half = arr[: arr.shape[0] // 2], arr[arr.shape[0] // 2 :]
    # CLIP's row (above) has red borders, DRC's row (below) green ones
    assert count(Image.fromarray(top_half), RED) > 3 * 4 * style.border * style.tile * 0.8
    assert count(Image.fromarray(bottom_half), GREEN) > 3 * 4 * style.border * style.tile * 0.8
    assert count(Image.fromarray(top_half), GREEN) < count(Image.fromarray(bottom_half), GREEN)
    assert count(img, GOLD) > 50  # the ground-truth star
    # the title is drawn in the top margin band
    band = arr[style.margin : style.margin + style.title_size, style.margin : style.margin + 300]
    assert (band.min(-1) < 80).sum() > 100


def test_unknown_containment_draws_no_coloured_border_and_bad_files_do_not_fail(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    good = tmp_path / "good.png"
    scene((200, 200, 255)).save(good)
    tiles = [FigureTile(good, "0.5 good.png"), FigureTile(tmp_path / "broken.jpg", "broken")]
    out = render_comparison(tmp_path / "sub" / "g.png", "query", {"DRC": tiles})
    img = Image.open(out)
    assert count(img, GREEN) == 0 and count(img, RED) > 0  # red only in the "unreadable" note
    assert count(img, RED) < 2000  # ... which is text, not a border
    assert count(img, GOLD) == 0


def test_long_titles_and_labels_wrap_inside_the_figure(tmp_path):
    title = "a very long query " * 12
    tiles = [FigureTile(scene((10, 10, 10)), "label " * 40)] * 2
    short = Image.open(render_comparison(tmp_path / "a.png", "short", {"DRC": tiles}))
    long = Image.open(render_comparison(tmp_path / "b.png", title, {"DRC": tiles}))
    assert long.width == short.width and long.height > short.height


def test_warning_line_is_drawn_only_when_given(tmp_path):
    tiles = [FigureTile(scene((10, 10, 10)), "x")]
    plain = render_comparison(tmp_path / "a.png", "q", {"DRC": tiles}, subtitle="aff / neg")
    warned = render_comparison(
        tmp_path / "b.png", "q", {"DRC": tiles}, subtitle="aff / neg", warning="random weights"
    )
    plain, warned = Image.open(plain), Image.open(warned)
    assert count(plain, WARN) == 0 and count(warned, WARN) > 10  # antialiased text: few exact
    assert warned.height > plain.height


def test_explicit_ranks_are_drawn_instead_of_positions(tmp_path):
    img = scene((250, 250, 250))
    by_pos = render_comparison(tmp_path / "a.png", "q", {"r": [FigureTile(img)] * 2})
    ranked = render_comparison(
        tmp_path / "b.png", "q", {"r": [FigureTile(img, rank=1), FigureTile(img, rank=7)]}
    )
    same = render_comparison(
        tmp_path / "c.png", "q", {"r": [FigureTile(img, rank=1), FigureTile(img, rank=2)]}
    )
    a, b, c = (np.asarray(Image.open(p)) for p in (by_pos, ranked, same))
    assert (a == c).all() and not (a == b).all()
