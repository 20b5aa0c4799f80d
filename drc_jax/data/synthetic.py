"""An offline NegBench-format benchmark of coloured shapes, rendered on the fly (no downloads).

Captions negate an absent shape ("A red circle, but no green triangle."); the CSVs use both
NegBench formats with foreign ``filepath`` values and go through the real loaders. Generation is
deterministic and skipped when the set is on disk, so file fingerprints stay valid.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from drc_jax.data.negbench import Benchmark, load_coco_neg, load_msrvtt_neg

# name -> (RGB colour, shape)
OBJECTS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red circle": ((220, 30, 30), "circle"),
    "blue square": ((30, 60, 220), "square"),
    "green triangle": ((30, 170, 60), "triangle"),
    "yellow star": ((240, 210, 20), "star"),
    "purple cross": ((140, 40, 170), "cross"),
    "orange ring": ((250, 140, 20), "ring"),
    "black diamond": ((20, 20, 20), "diamond"),
    "white heart": ((250, 250, 250), "heart"),
}
BACKGROUNDS = ((200, 200, 200), (120, 170, 210), (190, 220, 160), (230, 210, 180))

IMAGE_TEMPLATES = (
    "A picture of {pos}, but no {neg}.",
    "{Pos} on a plain background, without any {neg}.",
    "There is no {neg} in the image, only {pos}.",
    "{Pos}; a {neg} is noticeably absent.",
    "An image with {pos} and no {neg} in sight.",
)
VIDEO_TEMPLATES = (
    "A video of {pos} moving across the screen, with no {neg}.",
    "{Pos} slides from left to right, and there is no {neg}.",
)

PLAIN_IMAGE_TEMPLATES = (
    "A picture of {pos}.",
    "{Pos} on a plain background.",
    "An image with {pos}.",
)
PLAIN_VIDEO_TEMPLATES = (
    "A video of {pos} moving across the screen.",
    "{Pos} slides from left to right.",
)

FIXED_PATH = "/datasets/elsewhere/synthetic/{kind}/{name}"


@dataclass(frozen=True)
class SyntheticSpec:
    num_images: int = 24
    captions_per_image: int = 3
    num_videos: int = 12
    frames_per_video: int = 8
    size: int = 96
    seed: int = 0


def _a(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def _join(names: list[str]) -> str:
    names = [_a(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _draw(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float) -> None:
    colour, shape = OBJECTS[name]
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    elif shape == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        draw.polygon(pts, fill=colour)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r / 3)))
    elif shape == "heart":
        draw.ellipse((cx - r, cy - r, cx, cy), fill=colour)
        draw.ellipse((cx, cy - r, cx + r, cy), fill=colour)
        draw.polygon([(cx - r, cy - r / 2), (cx + r, cy - r / 2), (cx, cy + r)], fill=colour)
    else:  # pragma: no cover - OBJECTS is fixed
        raise ValueError(shape)


def render_image(objects: list[str], size: int, rng: np.random.Generator) -> Image.Image:
    img = Image.new("RGB", (size, size), BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    draw = ImageDraw.Draw(img)
    cells = rng.permutation(4)[: len(objects)]  # one object per quadrant: no overlaps
    r = size / 6
    for name, cell in zip(objects, cells, strict=True):
        cx = (cell % 2 + 0.5) * size / 2 + rng.uniform(-r / 3, r / 3)
        cy = (cell // 2 + 0.5) * size / 2 + rng.uniform(-r / 3, r / 3)
        _draw(draw, name, cx, cy, r)
    return img


def write_video(path: Path, objects: list[str], spec: SyntheticSpec, rng) -> None:
    """An MP4 of ``objects`` moving left to right (mpeg4 codec: present in every PyAV build)."""
    import av

    bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    rows = rng.permutation(2)[: len(objects)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = spec.size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for t in range(spec.frames_per_video):
            img = Image.new("RGB", (spec.size, spec.size), bg)
            draw = ImageDraw.Draw(img)
            x = (t + 0.5) / spec.frames_per_video * spec.size
            for name, row in zip(objects, rows, strict=True):
                _draw(draw, name, x, (row + 0.5) * spec.size / 2, spec.size / 6)
            frame = av.VideoFrame.from_image(img)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _captions(templates, pos: list[str], neg: str, k: int, rng) -> list[str]:
    chosen = rng.permutation(len(templates))[:k]
    out = []
    for i in chosen:
        p = _join(pos)
        out.append(templates[i].format(pos=p, Pos=p[0].upper() + p[1:], neg=neg))
    return out


def plain_csv(csv_path: Path) -> Path:
    """The file beside a negated synthetic CSV with the same media and plain captions."""
    return csv_path.with_name(csv_path.name.replace("_neg.csv", "_plain.csv"))


def _write_plain(src: Path, templates, pos_of, seed: int) -> None:
    """``src``'s rows with each caption list replaced by as many captions without negation."""
    rng = np.random.default_rng([seed, 1])  # its own stream: the negated files do not change
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(plain_csv(src), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            n = len(ast.literal_eval(row["captions"]))
            caps = _captions(templates, pos_of(row), "", min(n, len(templates)), rng)
            row["captions"] = repr([caps[i % len(caps)] for i in range(n)])
            if "negative_concept" in row:
                row["negative_concept"] = ""
            w.writerow(row)


def build(root: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> tuple[Path, Path]:
    """Render the set under ``root`` (if not there); return the negated (coco_csv, msrvtt_csv)."""
    root = Path(root).expanduser()
    coco_csv, msrvtt_csv = root / "synthetic_coco_neg.csv", root / "synthetic_msrvtt_neg.csv"
    marker = root / "spec.json"
    want = json.dumps(asdict(spec), sort_keys=True)
    done = [coco_csv, plain_csv(coco_csv), plain_csv(msrvtt_csv)]
    if marker.is_file() and marker.read_text() == want and all(p.is_file() for p in done):
        return coco_csv, msrvtt_csv
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    names = list(OBJECTS)

    with open(coco_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["positive_objects", "negative_objects", "filepath", "image_id", "captions"])
        for i in range(spec.num_images):
            k = int(rng.integers(1, 4))
            perm = [names[j] for j in rng.permutation(len(names))]
            pos, absent = perm[:k], perm[k:]
            negatives = absent[:3]
            fname = f"synthetic_{i:06d}.jpg"
            render_image(pos, spec.size, rng).save(root / "images" / fname, quality=95)
            caps = []
            for c in range(spec.captions_per_image):
                caps += _captions(IMAGE_TEMPLATES, pos, negatives[c % len(negatives)], 1, rng)
            w.writerow(
                [
                    repr(pos),
                    repr(negatives),
                    FIXED_PATH.format(kind="images", name=fname),
                    str(i),
                    repr(caps),
                ]
            )

    with open(msrvtt_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "image_id",
                "captions",
                "filepath",
                "all_captions",
                "positive_concept1",
                "positive_concept2",
                "negative_concept",
            ]
        )
        for i in range(spec.num_videos):
            k = int(rng.integers(1, 3))
            perm = [names[j] for j in rng.permutation(len(names))]
            pos, neg = perm[:k], perm[k]
            vid = f"video{i}"
            write_video(root / "videos" / f"{vid}.mp4", pos, spec, rng)
            caps = _captions(VIDEO_TEMPLATES, pos, neg, 1, rng)
            w.writerow(
                [
                    vid,
                    repr(caps),
                    FIXED_PATH.format(kind="videos", name=f"{vid}.mp4"),
                    repr([f"{_join(pos)} moving"]),
                    pos[0],
                    pos[1] if k > 1 else "",
                    neg,
                ]
            )
    _write_plain(
        coco_csv, PLAIN_IMAGE_TEMPLATES, lambda r: ast.literal_eval(r["positive_objects"]),
        spec.seed,
    )  # fmt: skip
    _write_plain(
        msrvtt_csv, PLAIN_VIDEO_TEMPLATES,
        lambda r: [c for c in (r["positive_concept1"], r["positive_concept2"]) if c], spec.seed,
    )  # fmt: skip
    marker.write_text(want)
    return coco_csv, msrvtt_csv


def load_synthetic(
    root: str | Path,
    kind: str = "image",
    spec: SyntheticSpec = SyntheticSpec(),
    *,
    plain: bool = False,
) -> Benchmark:
    """Build or reuse the set under ``root`` and load it; ``plain``: captions without negation."""
    coco_csv, msrvtt_csv = build(root, spec)
    if plain:
        coco_csv, msrvtt_csv = plain_csv(coco_csv), plain_csv(msrvtt_csv)
    if kind == "image":
        return load_coco_neg(coco_csv, name="synthetic")
    # Unlike MSR-VTT's, the synthetic videos' concepts list every object shown.
    bench = load_msrvtt_neg(msrvtt_csv, name="synthetic_video")
    return dataclasses.replace(bench, objects_complete=True)
