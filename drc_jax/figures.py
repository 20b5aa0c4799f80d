"""Retrieval figures in the style of the paper's Figures 1 and 3, drawn with Pillow only.

The query as title, one row of ranked tiles per method; a red border marks an image showing the
negated concept, green one without, a star the ground truth.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

GREEN = (30, 150, 60)
RED = (205, 35, 35)
GOLD = (245, 190, 20)
INK = (25, 25, 25)
MUTED = (110, 110, 110)
WARN = (190, 80, 0)
PAPER = (255, 255, 255)
TILE_BG = (236, 236, 236)


@dataclass(frozen=True)
class FigureTile:
    """One retrieved image; ``contains_negated``: red / green / no border; ``label`` under it."""

    image: Image.Image | str | os.PathLike
    label: str = ""
    contains_negated: bool | None = None
    is_ground_truth: bool = False
    rank: int | None = None  # default: the tile's position in its row (from 1)


@dataclass(frozen=True)
class FigureStyle:
    tile: int = 176  # image side in pixels
    border: int = 6
    gap: int = 14
    margin: int = 20
    row_label_width: int = 120
    title_size: int = 24
    text_size: int = 14
    label_lines: int = 2


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in ("DejaVuSans.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (FreeType)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int((bottom - top) * 1.35) + 1


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels, at most ``max_lines`` lines (last one ellipsised)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        line = ""
        for word in words:
            candidate = f"{line} {word}".strip()
            if not line or _text_width(draw, candidate, font) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " …"
    return [_fit(draw, line, font, width) for line in lines]


def _load(image: Image.Image | str | os.PathLike, side: int) -> tuple[Image.Image, str | None]:
    """The image letterboxed into a ``side`` square; a grey placeholder (and why) if unreadable."""
    try:
        if isinstance(image, Image.Image):
            img = image
        else:
            with Image.open(image) as f:
                img = ImageOps.exif_transpose(f)
                img.load()
        img = img.convert("RGB")
    except (OSError, ValueError) as e:
        return Image.new("RGB", (side, side), TILE_BG), f"unreadable\n{type(e).__name__}"
    img = ImageOps.contain(img, (side, side), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (side, side), TILE_BG)
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas, None


def _star(cx: float, cy: float, r_out: float, r_in: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        r = r_out if i % 2 == 0 else r_in
        a = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _badge(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font, fill) -> None:
    x, y = xy
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 10, bottom - top + 8
    draw.rounded_rectangle((x, y, x + w, y + h), radius=5, fill=fill)
    draw.text((x + 5 - left, y + 4 - top), text, font=font, fill=PAPER)


def render_comparison(
    out_path: str | os.PathLike,
    title: str,
    rows: Mapping[str, Sequence[FigureTile]],
    *,
    subtitle: str = "",
    warning: str = "",
    style: FigureStyle = FigureStyle(),
) -> Path:
    """Draw ``rows`` (label -> ranked tiles, e.g. ``{"CLIP": [...], "DRC": [...]}``) to a PNG path.

    ``title``: the query; ``subtitle``: a second line; ``warning``: a line in orange.
    """
    if not rows:
        raise ValueError("render_comparison needs at least one row of tiles")
    s = style
    title_font, text_font = _font(s.title_size), _font(s.text_size)
    small_bold = _font(max(10, s.text_size - 1))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    n_cols = max(1, max(len(t) for t in rows.values()))
    cell = s.tile + 2 * s.border
    width = 2 * s.margin + s.row_label_width + n_cols * cell + (n_cols - 1) * s.gap
    text_w = width - 2 * s.margin

    title_lines = _wrap(scratch, title, title_font, text_w, 3)
    sub_lines = _wrap(scratch, subtitle, text_font, text_w, 4) if subtitle else []
    warn_lines = _wrap(scratch, warning, text_font, text_w, 3) if warning else []
    th, lh = _line_height(title_font), _line_height(text_font)
    header = len(title_lines) * th + (len(sub_lines) + len(warn_lines)) * lh + s.gap
    row_h = cell + s.label_lines * lh + 6
    used = {t.contains_negated for tiles in rows.values() for t in tiles}
    any_gt = any(t.is_ground_truth for tiles in rows.values() for t in tiles)
    legend_h = lh + s.gap if (used - {None} or any_gt) else 0
    height = 2 * s.margin + header + len(rows) * (row_h + s.gap) + legend_h

    fig = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(fig)
    y = s.margin
    for line in title_lines:
        draw.text((s.margin, y), line, font=title_font, fill=INK)
        y += th
    for line in sub_lines:
        draw.text((s.margin, y), line, font=text_font, fill=MUTED)
        y += lh
    for line in warn_lines:
        draw.text((s.margin, y), line, font=text_font, fill=WARN)
        y += lh
    y += s.gap

    for row_label, tiles in rows.items():
        label_lines = _wrap(draw, row_label, title_font, s.row_label_width - 10, 3)
        ly = y + (cell - len(label_lines) * th) // 2
        for line in label_lines:
            draw.text((s.margin, ly), line, font=title_font, fill=INK)
            ly += th
        x = s.margin + s.row_label_width
        for rank, tile in enumerate(tiles, start=1):
            img, problem = _load(tile.image, s.tile)
            if tile.contains_negated is not None:
                colour = RED if tile.contains_negated else GREEN
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
            else:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=(200, 200, 200))
            fig.paste(img, (x + s.border, y + s.border))
            if problem:
                py = y + cell // 2 - lh
                for line in _wrap(draw, problem, text_font, s.tile - 16, 3):
                    draw.text((x + s.border + 8, py), line, font=text_font, fill=RED)
                    py += lh
            shown = tile.rank if tile.rank is not None else rank
            _badge(draw, (x + s.border + 4, y + s.border + 4), f"#{shown}", small_bold, (0, 0, 0))
            if tile.is_ground_truth:
                cx, cy = x + cell - s.border - 18, y + s.border + 18
                draw.ellipse((cx - 16, cy - 16, cx + 16, cy + 16), fill=(0, 0, 0))
                draw.polygon(_star(cx, cy, 13, 5.5), fill=GOLD)
            ty = y + cell + 4
            for line in _wrap(draw, tile.label, text_font, cell, s.label_lines):
                draw.text((x, ty), line, font=text_font, fill=INK)
                ty += lh
            x += cell + s.gap
        y += row_h + s.gap

    if legend_h:
        x = s.margin
        entries = []
        if False in used:
            entries.append(("box", GREEN, "no negated concept"))
        if True in used:
            entries.append(("box", RED, "contains the negated concept"))
        if any_gt:
            entries.append(("star", GOLD, "ground truth"))
        box = lh - 4
        for kind, colour, text in entries:
            if kind == "box":
                draw.rectangle((x, y + 2, x + box, y + 2 + box), outline=colour, width=4)
            else:
                draw.polygon(_star(x + box / 2, y + 2 + box / 2, box / 2 + 1, box / 4), fill=colour)
            draw.text((x + box + 6, y), text, font=text_font, fill=INK)
            x += box + 6 + _text_width(draw, text, text_font) + 3 * s.gap

    from drc_jax import atomic

    return atomic.write(out_path, lambda f: fig.save(f, format="PNG", optimize=True))
