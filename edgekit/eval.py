"""Detection accuracy: COCO mAP through pycocotools' COCOeval, the reference implementation.

A home-made mAP drifts from the published numbers in small ways (interpolation, crowd boxes,
the per-image detection cap), so edgekit only converts detections to COCO results and reads
COCOeval's precision table. pycocotools is imported lazily: it is the ``eval`` extra.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .data.dataset import Dataset
from .errors import DatasetError, require
from .types import Detections

__all__ = ["EvalResult", "evaluate", "evaluate_detections"]


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """Accuracy of a detector on a dataset.

    Attributes:
        map50: mAP at IoU 0.5 (area all, 100 detections per image).
        map50_95: mAP averaged over IoU 0.5:0.05:0.95, COCO's headline number.
        per_class: Class name -> ``{"ap50", "ap50_95", "instances"}``. Classes without
            ground truth have NaN APs and, as in COCOeval, do not count in the means.
        images: How many images were evaluated.
        seconds: Wall time of the evaluation (inference included when ``evaluate`` ran it).
    """

    map50: float
    map50_95: float
    per_class: dict[str, dict[str, Any]]
    images: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict (NaN becomes None; the timing is left out)."""
        return {
            "map50": _json_float(self.map50),
            "map50_95": _json_float(self.map50_95),
            "per_class": {
                name: {
                    "ap50": _json_float(ap["ap50"]),
                    "ap50_95": _json_float(ap["ap50_95"]),
                    "instances": int(ap["instances"]),
                }
                for name, ap in self.per_class.items()
            },
            "images": self.images,
        }


def evaluate(
    predict: Callable[[np.ndarray], Detections],
    dataset: Dataset,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Runs a detector over a dataset and scores it with COCOeval.

    Args:
        predict: Takes a BGR uint8 image, returns its detections in original pixels.
        dataset: The labelled images; detection class ids index ``dataset.labels``.
        progress: Called as ``progress(done, total)`` after each image.

    Returns:
        The accuracy, with ``seconds`` covering inference and scoring.

    Raises:
        MissingDependencyError: pycocotools is not installed.
        DatasetError: An image cannot be read.
    """
    start = time.perf_counter()
    total = len(dataset.items)
    results = {}
    for done, sample in enumerate(dataset.items, start=1):
        results[sample.image_id] = predict(dataset.read_image(sample))
        if progress is not None:
            progress(done, total)
    return replace(evaluate_detections(results, dataset), seconds=time.perf_counter() - start)


def evaluate_detections(results: Mapping[int, Detections], dataset: Dataset) -> EvalResult:
    """Scores precomputed detections with COCOeval (bbox, default parameters).

    Every image of the dataset is evaluated; one missing from ``results`` counts as an image
    where nothing was detected. Detections of class ids outside ``dataset.labels`` are
    ignored, as COCOeval ignores categories absent from the ground truth (match the labels
    first with ``check_labels``).

    Args:
        results: ``Sample.image_id`` -> detections for that image, in original pixels.
        dataset: The labelled images.

    Returns:
        The accuracy; ``seconds`` is the time COCOeval took.

    Raises:
        MissingDependencyError: pycocotools is not installed.
        DatasetError: ``results`` names images that are not in the dataset.
    """
    coco_class, cocoeval_class = _pycocotools()
    start = time.perf_counter()
    _check_image_ids(results, dataset)
    # pycocotools prints progress on stdout, which would corrupt a CLI's JSON output.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _coco_api(coco_class, dataset.to_coco())
        records = _coco_results(results)
        # loadRes indexes anns[0] and so fails on an empty list: build the empty result set.
        dt = gt.loadRes(records) if records else _coco_api(coco_class, _no_results(gt))
        evaluator = cocoeval_class(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    return _summarise(evaluator, dataset, seconds=time.perf_counter() - start)


def _pycocotools() -> tuple[type, type]:
    modules = [
        require(name, package="pycocotools", extra="eval", purpose="mAP evaluation")
        for name in ("pycocotools.coco", "pycocotools.cocoeval")
    ]
    return modules[0].COCO, modules[1].COCOeval


def _check_image_ids(results: Mapping[int, Detections], dataset: Dataset) -> None:
    unknown = set(results) - {sample.image_id for sample in dataset.items}
    if unknown:
        shown = ", ".join(str(i) for i in sorted(unknown)[:5])
        raise DatasetError(
            f"Detections name {len(unknown)} image ids that dataset {dataset.root} lacks: {shown}.",
            hint="Key results by Sample.image_id of the dataset being evaluated.",
        )


def _coco_api(coco_class: type, doc: dict[str, Any]) -> Any:
    coco = coco_class()
    coco.dataset = doc
    coco.createIndex()
    return coco


def _no_results(gt: Any) -> dict[str, Any]:
    return {
        "images": gt.dataset["images"],
        "categories": gt.dataset["categories"],
        "annotations": [],
    }


def _coco_results(results: Mapping[int, Detections]) -> list[dict[str, Any]]:
    """Converts detections to COCO result records (xywh, category id = class id + 1)."""
    records = []
    for image_id, detections in results.items():
        xyxy = np.asarray(detections.xyxy, np.float64).reshape(-1, 4)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        for box, score, cls in zip(
            xywh.tolist(),
            detections.confidence.tolist(),
            detections.class_id.tolist(),
            strict=True,
        ):
            records.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(cls) + 1,
                    "bbox": box,
                    "score": float(score),
                }
            )
    return records


def _summarise(evaluator: Any, dataset: Dataset, *, seconds: float) -> EvalResult:
    """Reads mAP from COCOeval's precision table [iou, recall, class, area, maxDets]."""
    params = evaluator.params
    area = params.areaRngLbl.index("all")
    max_dets = params.maxDets.index(100)
    precision = evaluator.eval["precision"][:, :, :, area, max_dets]
    iou50 = int(np.argmin(np.abs(params.iouThrs - 0.5)))
    instances = _instances(dataset)
    per_class = {}
    for k, category_id in enumerate(params.catIds):
        per_class[dataset.labels[category_id - 1]] = {
            "ap50": _mean_valid(precision[iou50, :, k]),
            "ap50_95": _mean_valid(precision[:, :, k]),
            "instances": int(instances[category_id - 1]),
        }
    return EvalResult(
        map50=_mean_valid(precision[iou50]),
        map50_95=_mean_valid(precision),
        per_class=per_class,
        images=len(dataset.items),
        seconds=seconds,
    )


def _instances(dataset: Dataset) -> np.ndarray:
    # Crowd boxes are ignored by COCOeval, so they are not instances a detector must find.
    counts = np.zeros(len(dataset.labels), np.int64)
    for sample in dataset.items:
        np.add.at(counts, sample.class_id[~sample.crowd], 1)
    return counts


def _mean_valid(precision: np.ndarray) -> float:
    # COCOeval marks "no ground truth for this class" with -1 (cocoeval.py summarize()).
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else math.nan


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
