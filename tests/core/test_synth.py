"""The synthetic road-scene generator: determinism, valid boxes, class coverage, COCO output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.synth import LABELS, render_scene, write_dataset


def _scene(seed: int, i: int = 0, **kwargs):
    return render_scene(np.random.default_rng([seed, i]), **kwargs)


def test_same_seed_gives_identical_scene() -> None:
    a, b = _scene(7), _scene(7)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_different_seed_gives_different_scene() -> None:
    assert not np.array_equal(_scene(1)[0], _scene(2)[0])


def test_image_and_label_types() -> None:
    image, boxes, classes = _scene(3, width=320, height=240)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert boxes.dtype == np.float32 and boxes.shape == (len(classes), 4)
    assert classes.dtype == np.int64


def test_boxes_inside_image_and_not_degenerate() -> None:
    for i in range(60):
        image, boxes, classes = _scene(11, i)
        h, w = image.shape[:2]
        assert len(boxes) <= 12
        assert (boxes[:, [0, 1]] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] - boxes[:, 0] >= 4).all() and (boxes[:, 3] - boxes[:, 1] >= 4).all()
        assert ((classes >= 0) & (classes < len(LABELS))).all()


def test_every_class_appears_and_sizes_vary() -> None:
    counts = np.zeros(len(LABELS), int)
    sides = []
    for i in range(200):
        _, boxes, classes = render_scene(np.random.default_rng([5, i]), width=256, height=192)
        np.add.at(counts, classes, 1)
        sides.extend(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).tolist())
    assert (counts >= 20).all(), dict(zip(LABELS, counts.tolist(), strict=True))
    # Scale range: from a few pixels to a large share of the image.
    assert min(sides) < 12 and max(sides) > 0.4 * 256


def test_write_dataset_is_valid_coco(tmp_path) -> None:
    coco_mod = pytest.importorskip("pycocotools.coco")
    seen = []
    path = write_dataset(tmp_path, count=6, seed=3, width=160, height=120,
                         progress=seen.append)
    assert path == tmp_path / "annotations.json" and seen == [1, 2, 3, 4, 5, 6]
    data = json.loads(path.read_text())
    assert [c["name"] for c in data["categories"]] == list(LABELS)
    assert [c["id"] for c in data["categories"]] == list(range(1, len(LABELS) + 1))
    coco = coco_mod.COCO(str(path))
    assert len(coco.getImgIds()) == 6
    expected = sum(len(_scene(3, i, width=160, height=120)[2]) for i in range(6))
    assert len(coco.getAnnIds()) == expected
    for info in coco.loadImgs(coco.getImgIds()):
        assert (tmp_path / "images" / info["file_name"]).is_file()
        assert (info["width"], info["height"]) == (160, 120)
    for ann in coco.loadAnns(coco.getAnnIds()):
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x + w <= 160.01 and y + h <= 120.01 and ann["iscrowd"] == 0


def test_write_dataset_is_reproducible(tmp_path) -> None:
    a = write_dataset(tmp_path / "a", count=3, seed=9, width=96, height=72)
    b = write_dataset(tmp_path / "b", count=3, seed=9, width=96, height=72)
    assert a.read_bytes() == b.read_bytes()
    for name in ("000000.jpg", "000002.jpg"):
        image_a, image_b = a.parent / "images" / name, b.parent / "images" / name
        assert image_a.read_bytes() == image_b.read_bytes()
