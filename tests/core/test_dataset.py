"""COCO and YOLO readers: same data in, same Dataset out; bad input, one clear DatasetError."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.data.dataset import Dataset, check_labels, load_dataset
from edgekit.errors import DatasetError

WIDTH, HEIGHT = 64, 48
LABELS = ["cat", "dog", "bird"]  # bird has no boxes: a class without ground truth
# COCO category ids are not contiguous and not listed in order in real files.
CATEGORIES = [{"id": 7, "name": "bird"}, {"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}]
COCO_ID = {0: 2, 1: 5, 2: 7}
# file name -> boxes (x1, y1, x2, y2, class id); c.jpg is a background image.
BOXES = {
    "a.jpg": [(4, 6, 24, 30, 0), (30, 10, 60, 40, 1)],
    "b.jpg": [(10, 10, 40, 30, 1)],
    "c.jpg": [],
}


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, boxes in BOXES.items():
        image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
        for x1, y1, x2, y2, cls in boxes:
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), (80 * cls + 60, 200, 90), -1)
        assert cv2.imwrite(str(folder / name), image)


def coco_doc() -> dict:
    images, annotations = [], []
    for image_id, (name, boxes) in enumerate(BOXES.items(), start=10):
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
        for x1, y1, x2, y2, cls in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": COCO_ID[cls],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def write_coco(root: Path, doc: dict | None = None) -> Path:
    write_images(root / "images")
    (root / "annotations.json").write_text(json.dumps(doc or coco_doc()))
    return root


def yolo_lines(boxes: list[tuple[int, ...]]) -> str:
    lines = []
    for x1, y1, x2, y2, cls in boxes:
        cx, cy = (x1 + x2) / 2 / WIDTH, (y1 + y2) / 2 / HEIGHT
        w, h = (x2 - x1) / WIDTH, (y2 - y1) / HEIGHT
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + "\n" if lines else ""


def write_yolo(root: Path, *, split: str | None = None, names: str = "yaml-list") -> Path:
    sub = Path(split) if split else Path()
    write_images(root / "images" / sub)
    (root / "labels" / sub).mkdir(parents=True, exist_ok=True)
    for name, boxes in BOXES.items():
        if boxes:  # c.jpg gets no label file: a background image
            (root / "labels" / sub / name).with_suffix(".txt").write_text(yolo_lines(boxes))
    if names == "yaml-list":
        (root / "data.yaml").write_text(f"path: .\nval: images/val\nnames: {LABELS}\n")
    elif names == "yaml-dict":
        body = "".join(f"  {i}: {n}\n" for i, n in enumerate(LABELS))
        (root / "dataset.yaml").write_text("names:\n" + body)
    elif names == "classes.txt":
        (root / "classes.txt").write_text("\n".join(LABELS) + "\n")
    return root


def boxes_of(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s.image_path.name: (s.xyxy, s.class_id) for s in dataset.items}


def test_coco_folder_maps_sorted_category_ids_to_class_ids(tmp_path: Path) -> None:
    dataset = load_dataset(write_coco(tmp_path))
    assert dataset.labels == LABELS
    assert [s.image_id for s in dataset.items] == [10, 11, 12]
    first = dataset.items[0]
    assert first.image_path == tmp_path / "images" / "a.jpg"
    assert (first.width, first.height) == (WIDTH, HEIGHT)
    assert first.xyxy.dtype == np.float32 and first.class_id.dtype == np.int64
    np.testing.assert_array_equal(first.xyxy, [[4, 6, 24, 30], [30, 10, 60, 40]])
    np.testing.assert_array_equal(first.class_id, [0, 1])
    assert dataset.items[2].xyxy.shape == (0, 4)


@pytest.mark.parametrize("names", ["yaml-list", "yaml-dict", "classes.txt"])
def test_yolo_and_coco_readers_agree(tmp_path: Path, names: str) -> None:
    if names.startswith("yaml"):
        pytest.importorskip("yaml")
    coco = load_dataset(write_coco(tmp_path / "coco"))
    yolo = load_dataset(write_yolo(tmp_path / "yolo", names=names))
    assert yolo.labels == coco.labels
    assert [(s.width, s.height) for s in yolo.items] == [(s.width, s.height) for s in coco.items]
    for name, (xyxy, cls) in boxes_of(coco).items():
        np.testing.assert_allclose(boxes_of(yolo)[name][0], xyxy, atol=1e-3)
        np.testing.assert_array_equal(boxes_of(yolo)[name][1], cls)


def test_ultralytics_split_layout_defaults_to_val(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, split="val", names="classes.txt")
    write_images(root / "images" / "train")
    default = load_dataset(root)
    assert default.items[0].image_path.parent == root / "images" / "val"
    assert len(default.items[0].xyxy) == 2
    train = load_dataset(root, split="train")
    assert train.items[0].image_path.parent == root / "images" / "train"
    assert len(train.items[0].xyxy) == 0  # no labels/train: background images
    with pytest.raises(DatasetError, match="test") as error:
        load_dataset(root, split="test")
    assert "train, val" in str(error.value)


def test_yaml_file_as_uri(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    root = write_yolo(tmp_path, split="val")
    assert load_dataset(root / "data.yaml").labels == LABELS


def test_json_file_with_images_beside_it(tmp_path: Path) -> None:
    write_images(tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(coco_doc()))
    dataset = load_dataset(str(tmp_path / "gt.json"))
    assert dataset.items[0].image_path == tmp_path / "a.jpg"


def test_coco_release_layout_picks_the_val_file(tmp_path: Path) -> None:
    write_images(tmp_path / "val2017")
    write_images(tmp_path / "train2017")
    (tmp_path / "annotations").mkdir()
    doc = coco_doc()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    doc["images"] = doc["images"][:1]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] == 10]
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    dataset = load_dataset(tmp_path)
    assert len(dataset) == 3
    assert dataset.items[0].image_path == tmp_path / "val2017" / "a.jpg"
    train = load_dataset(tmp_path, split="train")
    assert train.items[0].image_path == tmp_path / "train2017" / "a.jpg"
    with pytest.raises(DatasetError, match="instances_train2017.json, instances_val2017.json"):
        load_dataset(tmp_path, split="test")


def test_to_coco_round_trips_with_category_id_class_plus_one(tmp_path: Path) -> None:
    dataset = load_dataset(write_coco(tmp_path))
    doc = dataset.to_coco()
    assert doc["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(LABELS)]
    first = doc["annotations"][0]
    assert (first["image_id"], first["category_id"], first["bbox"]) == (10, 1, [4, 6, 20, 24])
    assert doc["images"][0]["file_name"] == "images/a.jpg"
    (tmp_path / "again.json").write_text(json.dumps(doc))
    again = load_dataset(tmp_path / "again.json")
    assert again.labels == LABELS
    for name, (xyxy, cls) in boxes_of(dataset).items():
        np.testing.assert_array_equal(boxes_of(again)[name][0], xyxy)
        np.testing.assert_array_equal(boxes_of(again)[name][1], cls)


def test_crowd_boxes_are_kept_and_flagged(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["annotations"][1]["iscrowd"] = 1
    dataset = load_dataset(write_coco(tmp_path, doc))
    np.testing.assert_array_equal(dataset.items[0].crowd, [False, True])
    assert [a["iscrowd"] for a in dataset.to_coco()["annotations"]] == [0, 1, 0]


def test_yolo_polygon_line_becomes_its_bounding_box(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, names="classes.txt")
    (root / "labels" / "b.txt").write_text("1 0.25 0.5 0.5 0.25 0.75 0.5 0.5 0.75\n")
    sample = boxes_of(load_dataset(root))["b.jpg"]
    np.testing.assert_allclose(sample[0], [[16, 12, 48, 36]])
    np.testing.assert_array_equal(sample[1], [1])


def test_subset_keeps_first_or_draws_reproducibly(tmp_path: Path) -> None:
    dataset = load_dataset(write_coco(tmp_path))
    assert [s.image_id for s in dataset.subset(2).items] == [10, 11]
    assert len(dataset.subset(99)) == 3
    drawn = dataset.subset(2, seed=1)
    assert [s.image_id for s in drawn.items] == [
        s.image_id for s in dataset.subset(2, seed=1).items
    ]
    assert drawn.labels == LABELS and len(dataset) == 3
    with pytest.raises(ValueError):
        dataset.subset(0)


def test_read_image_gives_bgr_uint8_or_a_dataset_error(tmp_path: Path) -> None:
    dataset = load_dataset(write_coco(tmp_path))
    image = dataset.read_image(dataset.items[0])
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    broken = tmp_path / "images" / "b.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="b.jpg"):
        dataset.read_image(dataset.items[1])


# -- bad input: each case names the offending path -----------------------------------------


def _bad_json(root: Path) -> tuple[Path, Path]:
    write_coco(root)
    (root / "annotations.json").write_text('{"images": [\n  {"id": 1,}\n]}')
    return root, root / "annotations.json"


def _edit_coco(edit):
    def build(root: Path) -> tuple[Path, Path]:
        doc = coco_doc()
        edit(doc)
        write_coco(root, doc)
        return root, root / "annotations.json"

    return build


def _edit_yolo(name: str, text: str, names: str = "classes.txt"):
    def build(root: Path) -> tuple[Path, Path]:
        write_yolo(root, names=names)
        (root / "labels" / name).write_text(text)
        return root, root / "labels" / name

    return build


def _missing_path(root: Path) -> tuple[Path, Path]:
    return root / "nowhere", root / "nowhere"


def _not_a_dataset(root: Path) -> tuple[Path, Path]:
    root.mkdir(exist_ok=True)
    return root, root


def _yolo_without_names(root: Path) -> tuple[Path, Path]:
    write_yolo(root, names="none")
    return root, root


def _yolo_without_images(root: Path) -> tuple[Path, Path]:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("cat\n")
    return root, root


def _yolo_damaged_image(root: Path) -> tuple[Path, Path]:
    write_yolo(root, names="classes.txt")
    (root / "images" / "b.jpg").write_bytes(b"\x00" * 10)
    return root, root / "images" / "b.jpg"


def _missing_images(root: Path) -> tuple[Path, Path]:
    doc = coco_doc()
    doc["images"] += [
        {"id": 100 + i, "file_name": f"gone{i}.jpg", "width": 8, "height": 8} for i in range(7)
    ]
    write_coco(root, doc)
    return root, root / "annotations.json"


def _empty_coco(root: Path) -> tuple[Path, Path]:
    write_coco(root, {"images": [], "annotations": [], "categories": CATEGORIES})
    return root, root


BAD_INPUTS = {
    "missing path": (_missing_path, "not found"),
    "not a dataset": (_not_a_dataset, "No dataset found"),
    "invalid json": (_bad_json, "line 2, column 12"),
    "json not coco": (_edit_coco(lambda d: d.pop("categories")), "no 'categories'"),
    "unknown image": (
        _edit_coco(lambda d: d["annotations"][0].update(image_id=99)),
        "image_id 99",
    ),
    "unknown category": (
        _edit_coco(lambda d: d["annotations"][0].update(category_id=3)),
        "category_id 3",
    ),
    "bad bbox": (_edit_coco(lambda d: d["annotations"][0].update(bbox=[1, 2])), "bbox"),
    "image without width": (_edit_coco(lambda d: d["images"][1].pop("width")), "'width'"),
    "missing images": (_missing_images, r"7 images .* gone4.jpg, \.\.\. \(7 in all\)"),
    "empty coco": (_empty_coco, "no images"),
    "malformed yolo line": (_edit_yolo("a.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 oops\n"), r"a.txt:2"),
    "yolo class out of range": (_edit_yolo("a.txt", "3 0.5 0.5 0.2 0.2\n"), r"a.txt:1.*class 3"),
    "yolo pixels not normalised": (_edit_yolo("b.txt", "0 32 24 10 10\n"), r"b.txt:1.*normal"),
    "yolo without names": (_yolo_without_names, "No class names"),
    "yolo without images": (_yolo_without_images, "no images"),
    "yolo damaged image": (_yolo_damaged_image, "Cannot read 1 images"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_dataset_error_naming_the_path(tmp_path: Path, case: str) -> None:
    build, pattern = BAD_INPUTS[case]
    uri, culprit = build(tmp_path / "data")
    with pytest.raises(DatasetError, match=pattern) as error:
        load_dataset(uri)
    assert str(culprit) in error.value.message
    assert error.value.hint


def test_missing_images_lists_five_names_only(tmp_path: Path) -> None:
    uri, _ = _missing_images(tmp_path)
    with pytest.raises(DatasetError) as error:
        load_dataset(uri)
    listed = [f"gone{i}.jpg" for i in range(7) if f"gone{i}.jpg" in error.value.message]
    assert listed == [f"gone{i}.jpg" for i in range(5)]


def test_check_labels_accepts_the_same_names_in_order() -> None:
    check_labels(["cat", "dog"], ("cat", "dog"))


@pytest.mark.parametrize(
    ("dataset_labels", "model_labels", "pattern"),
    [
        (["cat", "dog"], ["cat", "cow"], "1: dataset 'dog' vs model 'cow'"),
        (["dog", "cat"], ["cat", "dog"], "different order"),
        (["cat"], ["cat", "dog"], r"1 classes, the model 2.*only the model has 'dog'"),
    ],
)
def test_check_labels_names_what_differs(
    dataset_labels: list[str], model_labels: list[str], pattern: str
) -> None:
    with pytest.raises(DatasetError, match=pattern) as error:
        check_labels(dataset_labels, model_labels, source="data/val")
    assert "data/val" in error.value.message
