"""Detection datasets on disk (COCO JSON or YOLO folders), read into one in-memory form.

Evaluation, calibration and the quantization gate all read data through ``load_dataset``, so a
dataset means the same boxes and the same class order wherever it is used. A bad file fails
here, once, with the path and what to fix; never later as a KeyError deep in an evaluator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, require
from ..sources.media import IMAGE_SUFFIXES

__all__ = ["Dataset", "Sample", "check_labels", "load_dataset"]

_LISTED = 5  # names shown in an error before "... (N in all)"
_COCO_KEYS = ("images", "annotations", "categories")
_LAYOUT_HINT = (
    "Pass a COCO JSON file, a folder with annotations.json (or annotations/instances_*.json), "
    "or a YOLO folder with images/, labels/ and data.yaml or classes.txt."
)
_COCO_HINT = (
    "Each COCO image needs id, file_name, width and height; each annotation image_id, "
    "category_id and bbox [x, y, width, height]; each category id and name."
)
_YOLO_LINE_HINT = (
    "Each line must be 'class cx cy w h' with coordinates normalised to 0-1 "
    "(or 'class x1 y1 x2 y2 ...' for a polygon)."
)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One image and its ground-truth boxes.

    Attributes:
        image_path: Where the image file is.
        width: Image width in pixels.
        height: Image height in pixels.
        xyxy: float32 [N, 4] boxes in pixels.
        class_id: int64 [N] 0-based class indices into ``Dataset.labels``.
        image_id: Identifier of the image (the COCO image id; 1-based position for YOLO).
        crowd: bool [N]; COCO ``iscrowd`` boxes, which COCOeval ignores instead of matching.
    """

    image_path: Path
    width: int
    height: int
    xyxy: np.ndarray
    class_id: np.ndarray
    image_id: int
    crowd: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Frozen: normalise dtypes once here so every reader hands out the same arrays.
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        class_id = np.asarray(self.class_id, np.int64).reshape(-1)
        crowd = np.zeros(len(xyxy), bool) if self.crowd is None else np.asarray(self.crowd, bool)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "crowd", crowd.reshape(-1))


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A labelled detection dataset.

    Attributes:
        root: The folder (or JSON file's folder) the dataset was read from.
        labels: Class names; ``labels[i]`` is the name of class id ``i``.
        items: The images with their boxes, in a stable order.
    """

    root: Path
    labels: list[str]
    items: list[Sample]

    def __len__(self) -> int:
        return len(self.items)

    def read_image(self, sample: Sample) -> np.ndarray:
        """Reads a sample's image.

        Args:
            sample: One of ``items``.

        Returns:
            HxWx3 uint8 BGR image.

        Raises:
            DatasetError: The file is missing or not a decodable image.
        """
        import cv2

        image = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(
                f"Cannot read image {sample.image_path}.",
                hint="Check that the file exists and is a JPEG/PNG/BMP/WebP/TIFF image.",
            )
        return image

    def to_coco(self) -> dict[str, Any]:
        """Returns the ground truth as a COCO dict, category id = class id + 1.

        The ids are renumbered (not the source file's), so COCO results written with
        ``category_id = class_id + 1`` always line up with it.
        """
        images, annotations = [], []
        for sample in self.items:
            images.append(
                {
                    "id": sample.image_id,
                    "file_name": _relative_name(sample.image_path, self.root),
                    "width": sample.width,
                    "height": sample.height,
                }
            )
            for box, cls, crowd in zip(sample.xyxy, sample.class_id, sample.crowd, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": sample.image_id,
                        "category_id": int(cls) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": int(crowd),
                    }
                )
        categories = [{"id": i + 1, "name": name} for i, name in enumerate(self.labels)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def subset(self, n: int, *, seed: int | None = None) -> Dataset:
        """Returns a dataset of at most ``n`` images.

        Args:
            n: How many images to keep (all of them when the dataset is smaller).
            seed: None keeps the first ``n``; a seed draws ``n`` at random (reproducibly),
                kept in their original order.

        Returns:
            A new Dataset sharing this one's samples.
        """
        if n < 1:
            raise ValueError(f"subset needs n >= 1, got {n}")
        if seed is None or n >= len(self.items):
            return replace(self, items=self.items[:n])
        picked = np.random.default_rng(seed).choice(len(self.items), size=n, replace=False)
        return replace(self, items=[self.items[i] for i in sorted(picked)])


def load_dataset(uri: str | Path, *, split: str | None = None) -> Dataset:
    """Reads a COCO or YOLO dataset.

    Accepted forms:
        * a COCO JSON file; images in ``images/`` beside it or in its folder;
        * a folder with ``annotations.json`` or ``annotations/instances_*.json``;
        * a YOLO folder: ``images/``, ``labels/`` and ``data.yaml``/``dataset.yaml``
          (``names:``) or ``classes.txt``; or its ``data.yaml`` itself. The Ultralytics
          layout ``images/<split>``, ``labels/<split>`` is read for ``split``.

    Args:
        uri: Path of the JSON file, the YAML file or the dataset folder.
        split: Which split to read (``val``, ``train``...). None takes ``val`` where the
            folder has one, else the whole folder.

    Returns:
        The dataset, with COCO categories mapped to 0-based class ids in category-id order.

    Raises:
        DatasetError: The path is missing, malformed or holds no images.
    """
    path = Path(uri).expanduser()
    if not path.exists():
        raise DatasetError(f"Dataset not found: {path}", hint=_LAYOUT_HINT)
    if path.is_dir():
        dataset = _read_folder(path, split=split)
    elif path.suffix.lower() == ".json":
        dataset = _read_coco(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        dataset = _read_yolo(path.parent, split=split, names_file=path)
    else:
        raise DatasetError(f"Not a dataset file: {path}", hint=_LAYOUT_HINT)
    if not dataset.items:
        raise DatasetError(
            f"Dataset {path} holds no images.",
            hint="Point at a split that has images, or check the annotation file's 'images'.",
        )
    return dataset


def check_labels(
    dataset_labels: Sequence[str], model_labels: Sequence[str], *, source: str | Path = ""
) -> None:
    """Checks that a dataset names the model's classes, in the model's order.

    Class ids are positions, so a dataset with the same names in another order would score
    (or calibrate) against the wrong classes without any error.

    Args:
        dataset_labels: The dataset's class names.
        model_labels: The model's class names (the bundle's labels).
        source: The dataset's path, named in the error.

    Raises:
        DatasetError: The names or their order differ; the message says which.
    """
    data, model = list(dataset_labels), list(model_labels)
    if data == model:
        return
    problems = []
    if len(data) != len(model):
        problems.append(f"the dataset has {len(data)} classes, the model {len(model)}")
    if sorted(data) == sorted(model):
        problems.append("the same names are in a different order")
    differ = [
        f"{i}: dataset '{d}' vs model '{m}'"
        for i, (d, m) in enumerate(zip(data, model, strict=False))
        if d != m
    ]
    if differ:
        problems.append("class " + _listing(differ, sep="; "))
    extra = data[len(model) :] or model[len(data) :]
    if extra:
        owner = "dataset" if len(data) > len(model) else "model"
        problems.append(f"only the {owner} has " + _listing([repr(x) for x in extra]))
    where = f" {source}" if source else ""
    raise DatasetError(
        f"Dataset{where} classes do not match the model's: " + "; ".join(problems) + ".",
        hint="Use data labelled with the model's classes, in the order of the bundle's labels.",
    )


# -- folders -------------------------------------------------------------------------------


def _read_folder(root: Path, *, split: str | None) -> Dataset:
    coco_json = _find_coco_json(root, split)
    if coco_json is not None:
        return _read_coco(coco_json, root=root)
    if (root / "labels").is_dir():
        return _read_yolo(root, split=split)
    raise DatasetError(
        f"No dataset found in {root}: no annotations.json, no labels/.", hint=_LAYOUT_HINT
    )


def _find_coco_json(root: Path, split: str | None) -> Path | None:
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    found = sorted((root / "annotations").glob("instances_*.json"))
    if found and (split is not None or len(found) > 1):
        # COCO ships instances_train2017.json beside instances_val2017.json: pick the split.
        wanted = [p for p in found if (split or "val") in p.stem]
        if len(wanted) != 1:
            raise DatasetError(
                f"Several annotation files in {root / 'annotations'}: "
                + _listing([p.name for p in found]),
                hint="Pass split= (e.g. 'val2017') or the JSON file itself.",
            )
        found = wanted
    return found[0] if found else None


def _listing(names: Sequence[str], *, sep: str = ", ") -> str:
    shown = sep.join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown}{sep}... ({len(names)} in all)"


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _check_images_exist(
    file_names: Sequence[str], image_dir: Path, *, listed_in: Path, searched: Sequence[Path]
) -> None:
    missing = [name for name in file_names if not (image_dir / name).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} images listed in {listed_in} are missing from {image_dir}: "
            + _listing(missing),
            hint="Put the images in images/ beside the annotations; searched "
            + ", ".join(str(p) for p in searched)
            + ".",
        )


# -- COCO ----------------------------------------------------------------------------------


def _read_coco(json_path: Path, *, root: Path | None = None) -> Dataset:
    doc = _read_json(json_path)
    labels, class_of = _coco_labels(doc["categories"], json_path)
    images = _coco_images(doc["images"], json_path)
    boxes = _coco_boxes(doc["annotations"], images, class_of, json_path)
    file_names = [img["file_name"] for img in images.values()]
    searched = _coco_image_dirs(json_path)
    image_dir = _most_images(searched, file_names)
    _check_images_exist(file_names, image_dir, listed_in=json_path, searched=searched)
    items = []
    for image_id, img in images.items():
        xyxy, cls, crowd = boxes.get(image_id, ([], [], []))
        items.append(
            Sample(
                image_path=image_dir / img["file_name"],
                width=img["width"],
                height=img["height"],
                xyxy=xyxy,
                class_id=cls,
                crowd=crowd,
                image_id=image_id,
            )
        )
    return Dataset(root=root or json_path.parent, labels=labels, items=items)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            hint="Fix the file there, or re-export the annotations.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read {path}: {exc}", hint="Check the file.") from None
    missing = [k for k in _COCO_KEYS if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise DatasetError(
            f"{path} is not a COCO detection file: no '{', '.join(missing)}'.",
            hint="A COCO file is an object with 'images', 'annotations' and 'categories' lists.",
        )
    if not all(isinstance(doc[k], list) for k in _COCO_KEYS):
        raise DatasetError(
            f"{path}: 'images', 'annotations' and 'categories' must be lists.", hint=_COCO_HINT
        )
    return doc


def _field(record: Any, key: str, kind: type, path: Path, what: str) -> Any:
    """Returns ``record[key]`` checked to be a ``kind`` (int or str), or a DatasetError."""
    value = record.get(key) if isinstance(record, dict) else None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # some exporters write ids and sizes as 640.0
    if not isinstance(value, kind) or isinstance(value, bool):
        problem = "no" if value is None else f"an invalid ({value!r})"
        raise DatasetError(f"{path}: {what} has {problem} '{key}'.", hint=_COCO_HINT)
    return value


def _coco_labels(categories: list[Any], path: Path) -> tuple[list[str], dict[int, int]]:
    named = {}
    for i, cat in enumerate(categories):
        cat_id = _field(cat, "id", int, path, f"category #{i}")
        if cat_id in named:
            raise DatasetError(f"{path}: category id {cat_id} appears twice.", hint=_COCO_HINT)
        named[cat_id] = _field(cat, "name", str, path, f"category {cat_id}")
    order = sorted(named)
    return [named[c] for c in order], {c: i for i, c in enumerate(order)}


def _coco_images(images: list[Any], path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(images):
        image_id = _field(img, "id", int, path, f"image #{i}")
        what = f"image {image_id}"
        if image_id in out:
            raise DatasetError(f"{path}: image id {image_id} appears twice.", hint=_COCO_HINT)
        out[image_id] = {
            "file_name": _field(img, "file_name", str, path, what),
            "width": _field(img, "width", int, path, what),
            "height": _field(img, "height", int, path, what),
        }
    return out


def _coco_boxes(
    annotations: list[Any], images: dict[int, Any], class_of: dict[int, int], path: Path
) -> dict[int, tuple[list, list, list]]:
    boxes: dict[int, tuple[list, list, list]] = {}
    for i, ann in enumerate(annotations):
        what = f"annotation {ann.get('id', f'#{i}') if isinstance(ann, dict) else f'#{i}'}"
        image_id = _field(ann, "image_id", int, path, what)
        cat_id = _field(ann, "category_id", int, path, what)
        if image_id not in images:
            raise DatasetError(
                f"{path}: {what} refers to image_id {image_id}, which is not in 'images'.",
                hint=_COCO_HINT,
            )
        if cat_id not in class_of:
            raise DatasetError(
                f"{path}: {what} refers to category_id {cat_id}, which is not in 'categories'.",
                hint=_COCO_HINT,
            )
        x, y, w, h = _coco_bbox(ann.get("bbox"), path, what)
        xyxy, cls, crowd = boxes.setdefault(image_id, ([], [], []))
        xyxy.append((x, y, x + w, y + h))
        cls.append(class_of[cat_id])
        crowd.append(bool(ann.get("iscrowd", 0)))
    return boxes


def _coco_bbox(bbox: Any, path: Path, what: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{path}: {what} has bbox {bbox!r}; expected [x, y, width, height].", hint=_COCO_HINT
        ) from None
    return x, y, w, h


def _coco_image_dirs(json_path: Path) -> list[Path]:
    """Folders that may hold a COCO file's images, most likely first."""
    here = json_path.parent
    candidates = [here / "images", here]
    if here.name == "annotations":
        # The COCO release layout: annotations/instances_val2017.json beside val2017/.
        tag = json_path.stem.removeprefix("instances_")
        top = here.parent
        candidates += [top / "images" / tag, top / "images", top / tag, top]
    return [c for c in candidates if c.is_dir()]


def _most_images(folders: Sequence[Path], file_names: Sequence[str]) -> Path:
    """Picks the folder holding the most of the images (ties: the first)."""
    found = [sum((folder / name).is_file() for name in file_names) for folder in folders]
    return folders[found.index(max(found))]


# -- YOLO ----------------------------------------------------------------------------------


def _read_yolo(root: Path, *, split: str | None, names_file: Path | None = None) -> Dataset:
    labels = _yolo_names(root, names_file)
    image_dir, label_dir = _yolo_dirs(root, split)
    paths = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    sizes = _image_sizes(paths)
    items = []
    for index, (path, (width, height)) in enumerate(zip(paths, sizes, strict=True)):
        label_file = (label_dir / path.relative_to(image_dir)).with_suffix(".txt")
        xyxy, cls = _yolo_labels(label_file, width, height, len(labels))
        items.append(
            Sample(
                image_path=path,
                width=width,
                height=height,
                xyxy=xyxy,
                class_id=cls,
                image_id=index + 1,
            )
        )
    return Dataset(root=root, labels=labels, items=items)


def _yolo_dirs(root: Path, split: str | None) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    if split is None and (images / "val").is_dir():
        split = "val"
    if split is not None:
        images, labels = images / split, labels / split
    if not images.is_dir():
        splits = sorted(p.name for p in (root / "images").glob("*") if p.is_dir())
        raise DatasetError(
            f"No image folder {images}.",
            hint=f"Splits found: {', '.join(splits)}." if splits else _LAYOUT_HINT,
        )
    return images, labels


def _yolo_names(root: Path, names_file: Path | None) -> list[str]:
    for path in [names_file, root / "data.yaml", root / "dataset.yaml"]:
        if path is not None and path.is_file():
            return _yaml_names(path)
    if (root / "classes.txt").is_file():
        names = (root / "classes.txt").read_text(encoding="utf-8").splitlines()
        return [n.strip() for n in names if n.strip()]
    raise DatasetError(
        f"No class names for the YOLO dataset {root}: no data.yaml, dataset.yaml or classes.txt.",
        hint="Add data.yaml with 'names: [...]', or classes.txt with one name a line.",
    )


def _yaml_names(path: Path) -> list[str]:
    yaml = require("yaml", package="pyyaml", purpose=f"reading {path.name}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {exc}", hint="Fix the file.") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[i]) for i in range(len(names))]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise DatasetError(
        f"{path} has no usable 'names': expected a list, or a dict keyed 0..N-1.",
        hint="Write e.g. 'names: [person, car]' or 'names: {0: person, 1: car}'.",
    )


def _image_sizes(paths: list[Path]) -> list[tuple[int, int]]:
    # Decoding is the size cv2 will really hand out (it applies EXIF rotation, which header
    # parsing would miss); cv2 releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        sizes = list(pool.map(_image_size, paths))
    bad = [str(p) for p, size in zip(paths, sizes, strict=True) if size is None]
    if bad:
        raise DatasetError(
            f"Cannot read {len(bad)} images: " + _listing(bad),
            hint="Remove or replace the damaged files.",
        )
    return sizes  # type: ignore[return-value]


def _image_size(path: Path) -> tuple[int, int] | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else (image.shape[1], image.shape[0])


def _yolo_labels(
    label_file: Path, width: int, height: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    # An image without a label file is a background image (the Ultralytics convention).
    if not label_file.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    boxes, classes = [], []
    lines = label_file.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            cls, box = _yolo_line(line, n_classes, where=f"{label_file}:{lineno}")
            boxes.append(box * (width, height, width, height))
            classes.append(cls)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def _yolo_line(line: str, n_classes: int, *, where: str) -> tuple[int, np.ndarray]:
    """Parses one label line into (class, normalised xyxy)."""
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        values = []
    polygon = len(values) >= 7 and len(values) % 2 == 1
    if len(values) != 5 and not polygon:
        raise DatasetError(f"{where}: malformed label line {line!r}.", hint=_YOLO_LINE_HINT)
    cls, coords = values[0], np.asarray(values[1:])
    if not cls.is_integer() or not 0 <= cls < n_classes:
        raise DatasetError(
            f"{where}: class {line.split()[0]} is not one of the {n_classes} "
            f"classes (0..{n_classes - 1}).",
            hint="Check the names list.",
        )
    # Ultralytics rejects the same lines: they are pixels, or boxes off the image.
    if coords.min() < 0 or coords.max() > 1 + 1e-3:
        raise DatasetError(
            f"{where}: coordinates are not normalised to 0-1: {line!r}.", hint=_YOLO_LINE_HINT
        )
    if polygon:
        points = coords.reshape(-1, 2)
        return int(cls), np.concatenate([points.min(0), points.max(0)])
    cx, cy, w, h = coords
    return int(cls), np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
