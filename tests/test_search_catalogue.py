"""Filters as file masks: each agrees with the plain definition on every file."""

import os
from datetime import date

import numpy as np
import pytest

from drc_jax.search.catalogue import Catalogue, Filter

NAMES = [
    "a.jpg",
    "Ä.PNG",
    "straße.jpg",
    "STRASSE.jpg",
    "日本の犬.webp",
    "x" * 200 + ".jpg",
    "Dog_Beach_2024.MP4",
    "dog.jpg",
    os.fsdecode(b"caf\xe9.jpg"),  # a Latin-1 name on a UTF-8 file system: surrogate-escaped
    "café.jpg",  # é is C3 A9 in UTF-8: a surrogate-escaped A9 alone must not match inside it
    "b",
]


def _catalogue(names, info=None):
    paths = [f"/photos/{'sub/' if i % 2 else ''}{n}" for i, n in enumerate(names)]
    keys = [f"k{i}" for i in range(len(paths))]
    table = {p: (k, f"1:{i * 10**9}") for i, (p, k) in enumerate(zip(paths, keys, strict=True))}
    return Catalogue.build(("/photos",), keys, table, info or {}, lambda p: p)


SUBS = ["a", "Ä", "ä", "JPG", "strasse", "犬", "xxxx", "dog", "caf", "zz", "\x00", "g\x00"]


@pytest.mark.parametrize("sub", [*SUBS, os.fsdecode(b"\xe9"), os.fsdecode(b"\xa9")])
def test_name_filter_matches_a_case_folded_substring_of_the_file_name(sub):
    cat = _catalogue(NAMES)
    want = [sub.lower() in p.rsplit("/", 1)[-1].lower() for p in cat.paths]
    assert cat.file_mask(Filter(name=sub)).tolist() == want


def test_name_filter_ignores_folder_names():
    cat = _catalogue(["dog.jpg", "cat.jpg"])
    assert cat.file_mask(Filter(name="sub")).tolist() == [False, False]


def test_filters_combine_folder_type_and_date():
    info = {"k0": {"taken": "2024-05-01T10:00:00"}, "k3": {"taken": "2025-01-01T00:00:00"}}
    cat = _catalogue(["a.jpg", "b.mp4", "c.jpg", "d.mp4"], info)
    by_path = {p: f for f, p in enumerate(cat.paths)}
    mask = cat.file_mask(Filter(folder="sub", type="video"))
    assert {cat.paths[f] for f in np.flatnonzero(mask)} == {
        "/photos/sub/b.mp4",
        "/photos/sub/d.mp4",
    }
    mask = cat.file_mask(Filter(taken_after=date(2024, 1, 1), taken_before=date(2024, 12, 31)))
    assert np.flatnonzero(mask).tolist() == [by_path["/photos/a.jpg"]]
