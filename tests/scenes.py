"""Small PIL-drawn scenes whose contents are known: a folder to try and test search offline.

A scene is a subject (dog, cat, or none) in a place (beach, park, street), drawn with simple shapes
and saved as ``<place>/<subject>_on_<place>_<i>.png`` (or ``<place>_<i>.png`` without a subject),
so the path names what the image contains. With real CLIP weights the drawings are crude but
recognisable; with random weights they only exercise the plumbing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SUBJECTS = ("dog", "cat", None)
PLACES = ("beach", "park", "street")
SIZE = (256, 192)


def _place(draw: ImageDraw.ImageDraw, place: str, rng: np.random.Generator) -> None:
    w, h = SIZE
    horizon = int(h * rng.uniform(0.35, 0.5))
    draw.rectangle((0, 0, w, horizon), fill=(135, 195, 235))  # sky
    if place == "beach":
        draw.rectangle((0, horizon, w, horizon + 30), fill=(30, 100, 190))  # sea
        draw.rectangle((0, horizon + 30, w, h), fill=(235, 210, 150))  # sand
        draw.ellipse((w - 60, 10, w - 20, 50), fill=(250, 220, 60))  # sun
    elif place == "park":
        draw.rectangle((0, horizon, w, h), fill=(80, 160, 70))  # grass
        x = int(rng.uniform(10, w - 60))
        draw.rectangle((x + 20, horizon - 40, x + 32, horizon + 10), fill=(110, 70, 40))  # trunk
        draw.ellipse((x, horizon - 80, x + 52, horizon - 25), fill=(40, 120, 50))  # crown
    elif place == "street":
        for i in range(4):  # buildings
            bx = i * w // 4
            top = int(rng.uniform(10, horizon - 10))
            draw.rectangle((bx + 4, top, bx + w // 4 - 4, horizon), fill=(150, 140, 135))
        draw.rectangle((0, horizon, w, h), fill=(90, 90, 95))  # road
        for x in range(0, w, 40):
            draw.rectangle((x, h - 40, x + 20, h - 34), fill=(240, 240, 240))  # lane marks
    else:
        raise ValueError(f"unknown place {place!r}; expected one of {PLACES}")


def _subject(draw: ImageDraw.ImageDraw, subject: str, rng: np.random.Generator) -> None:
    w, h = SIZE
    x, y = int(rng.uniform(30, w - 110)), int(rng.uniform(h * 0.55, h * 0.7))
    colour = (130, 85, 45) if subject == "dog" else (120, 120, 125)
    draw.ellipse((x, y, x + 70, y + 32), fill=colour)  # body
    for lx in (x + 10, x + 50):  # legs
        draw.rectangle((lx, y + 25, lx + 7, y + 48), fill=colour)
    hx, hy = x + 58, y - 18
    draw.ellipse((hx, hy, hx + 30, hy + 28), fill=colour)  # head
    if subject == "dog":
        draw.ellipse((hx - 4, hy + 4, hx + 8, hy + 24), fill=(90, 55, 25))  # floppy ear
        draw.rectangle((x - 14, y + 4, x + 2, y + 9), fill=colour)  # tail
    elif subject == "cat":
        draw.polygon([(hx + 2, hy + 6), (hx + 8, hy - 10), (hx + 14, hy + 4)], fill=colour)
        draw.polygon([(hx + 16, hy + 4), (hx + 22, hy - 10), (hx + 28, hy + 6)], fill=colour)
        draw.line((x - 20, y - 10, x + 2, y + 10), fill=colour, width=5)  # tail
    else:
        raise ValueError(f"unknown subject {subject!r}; expected one of {SUBJECTS}")
    draw.ellipse((hx + 18, hy + 8, hx + 23, hy + 13), fill=(10, 10, 10))  # eye


def draw_scene(subject: str | None, place: str, seed: int = 0) -> Image.Image:
    """An RGB image of ``subject`` (or nothing) in ``place``; layout varies with ``seed``."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(img)
    _place(draw, place, rng)
    if subject is not None:
        _subject(draw, subject, rng)
    return img


def scene_name(subject: str | None, place: str, i: int) -> str:
    stem = f"{subject}_on_{place}_{i}" if subject else f"{place}_{i}"
    return f"{place}/{stem}.png"


def make_scene_folder(
    root: str | os.PathLike, per_combination: int = 2, seed: int = 0
) -> dict[str, tuple[str | None, str]]:
    """Write every (subject, place) scene ``per_combination`` times under ``root``.

    Returns ``{relative path: (subject, place)}``. Files that exist are left untouched (so their
    fingerprints, and an index over them, stay valid).
    """
    root = Path(root)
    contents = {}
    for si, subject in enumerate(SUBJECTS):
        for pi, place in enumerate(PLACES):
            for i in range(per_combination):
                rel = scene_name(subject, place, i)
                path = root / rel
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    draw_scene(subject, place, seed=seed * 1000 + si * 100 + pi * 10 + i).save(path)
                contents[rel] = (subject, place)
    return contents
