"""The accuracy gate: every artifact measured on a validation set against the fp32 reference.

An INT8 export can lose half its accuracy without any error (shared/TOOLCHAIN.md: 46% of
decisions agreed when the decode tail was quantized), so nothing leaves ``export()`` without
these numbers. Each artifact runs through :class:`edgekit.detector.Detector` on its own
backend, with the manifest's pre/post-processing, exactly as a user would run it:

- mAP@0.5:0.95 and its delta vs the fp32 ONNX artifact (points, 0-100 scale);
- per-class AP@0.5:0.95 deltas (a drop can hide in one class behind a stable mean);
- output agreement: the fraction of the reference's detections (score >= the manifest's
  threshold) that the artifact also makes, same class, IoU >= 0.5;
- the median inference latency seen while evaluating (a by-product, not a benchmark).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends import BackendOptions
from edgekit.bundle import Artifact, Bundle, Format, OutputSpec, Precision
from edgekit.data.dataset import Dataset
from edgekit.types import Detections

from .jobs import ExportJob, Fallback, GateFailure

__all__ = ["DEFAULT_MAX_DROP", "EVAL_CONF", "EVAL_IOU", "MATCH_IOU", "Measurement",
           "agreement", "backend_options", "box_score_agreement", "compare", "fallbacks",
           "measure", "open_detector", "rescored", "with_accuracy"]

DEFAULT_MAX_DROP = 1.0  # mAP@0.5:0.95 points
EVAL_CONF, EVAL_IOU = 0.001, 0.6  # COCO-style mAP wants a low threshold (as `edgekit eval`)
MATCH_IOU = 0.5


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One artifact's results on the validation set."""

    key: str
    map50: float
    map50_95: float
    per_class: dict[str, dict[str, Any]]
    detections: dict[int, Detections]
    latency_ms: float
    executed_on: str
    images: int


def backend_options(bundle: Bundle, artifact: Artifact, *, threads: int) -> BackendOptions:
    """The options a CPU runner gives this artifact: f32 OpenVINO, LiteRT layout facts."""
    from edgekit.detector import with_layouts

    extra: dict[str, Any] = {}
    if artifact.format is Format.OPENVINO:
        # f32, not this CPU's silent bf16 default (TOOLCHAIN.md): INT8 IR runs its int8
        # kernels either way; fp32/fp16 IR are measured at what they claim.
        extra["precision"] = "fp32"
    # the layout facts, as the Detector adds them (the golden replay loads the backend bare)
    return with_layouts(BackendOptions(threads=threads, device="cpu", extra=extra),
                        bundle.manifest, artifact)


def open_detector(bundle: Bundle, artifact: Artifact | None = None, *, threads: int) -> Any:
    """The gate's Detector for ``artifact`` (default: the bundle's first), on its own backend
    with :func:`backend_options`; also what each Ray worker opens in a sharded gate."""
    from edgekit.detector import Detector

    artifact = artifact or bundle.manifest.artifacts[0]
    return Detector(bundle, artifact, options=backend_options(bundle, artifact, threads=threads))


def measure(bundle: Bundle, artifact: Artifact, dataset: Dataset, *, threads: int = 2,
            address: str | None = None, data: str | Path | None = None) -> Measurement:
    """Runs one artifact over the dataset on its backend and scores it with COCOeval.

    Args:
        bundle: The bundle holding ``artifact``.
        artifact: The artifact to measure.
        dataset: The validation set (its ground truth scores every detection here).
        threads: Inference threads (per worker when sharded).
        address: A Ray cluster (``auto``, ``host:port``, ``ray://host:port``) whose workers
            share the images (``edgekit eval --address``'s code path); None runs here.
        data: The dataset's path, readable on every node (required with ``address``).

    Raises:
        EdgekitError: The artifact cannot be loaded by its runtime, or an image is unreadable.
    """
    from edgekit.eval import evaluate_detections

    if address is not None:
        results, times, executed_on = _run_sharded(bundle, artifact, dataset, threads=threads,
                                                   address=address, data=data)
    else:
        detector = open_detector(bundle, artifact, threads=threads)
        results, times = {}, []
        for sample in dataset.items:
            results[sample.image_id] = detector(dataset.read_image(sample), conf=EVAL_CONF,
                                                iou=EVAL_IOU)
            times.append(detector.times.inference)
        executed_on = detector.backend.executed_on
    scored = evaluate_detections(results, dataset)
    return Measurement(key=artifact.key, map50=scored.map50, map50_95=scored.map50_95,
                       per_class=scored.per_class, detections=results,
                       latency_ms=statistics.median(times) if times else math.nan,
                       executed_on=executed_on, images=len(dataset.items))


def _run_sharded(bundle: Bundle, artifact: Artifact, dataset: Dataset, *, threads: int,
                 address: str, data: str | Path | None) -> tuple[dict[int, Detections],
                                                                 list[float], str]:
    """The detections of ``artifact`` from Ray workers, each opening it as the gate does.

    No latency comes back (empty times): workers share nodes and cores, so their timings
    would not be this artifact's latency.
    """
    from edgekit.batch.shard_eval import predict_sharded
    from edgekit.batch.worker import WorkerSettings
    from edgekit.errors import EdgekitError

    if data is None:
        raise EdgekitError("A sharded accuracy gate needs the validation set as a path.",
                           hint="Pass --val as a labelled dataset path every node can read.")
    # Only this artifact travels, so every worker opens exactly it.
    one = bundle.with_manifest(replace(bundle.manifest, artifacts=[artifact]))
    settings = WorkerSettings(board="export-gate", threads=threads, conf=EVAL_CONF,
                              iou=EVAL_IOU, opener=functools.partial(open_detector,
                                                                      threads=threads))
    results, worker = predict_sharded(one, data, [s.image_id for s in dataset.items], settings,
                                      address=address)
    return results, [], worker["executed_on"]


def rescored(measurement: Measurement, dataset: Dataset) -> Measurement:
    """The same detections scored against another ground truth (the label-free gate's)."""
    from edgekit.eval import evaluate_detections

    scored = evaluate_detections(measurement.detections, dataset)
    return replace(measurement, map50=scored.map50, map50_95=scored.map50_95,
                   per_class=scored.per_class)


def compare(reference: Measurement, candidate: Measurement, *, max_drop: float,
            conf: float) -> dict[str, Any]:
    """The gate's verdict on ``candidate``, as stored in ``Artifact.accuracy``.

    Args:
        reference: The fp32 reference's measurement.
        candidate: The artifact's measurement (the reference itself gives "reference").
        max_drop: Largest allowed mAP@0.5:0.95 drop, in points.
        conf: Score threshold of the deployed decisions (the manifest's), for agreement.

    Returns:
        ``map50``, ``map50_95`` (0-1), ``delta_map50_95`` (points, negative = worse),
        ``per_class`` APs, ``per_class_delta`` (points), ``agreement`` (0-1),
        ``reference``, ``max_drop``, ``images`` and ``gate`` ("passed", "failed" or
        "reference").
    """
    delta = _points(candidate.map50_95) - _points(reference.map50_95)
    per_class_delta = {
        name: _round(_points(ap["ap50_95"]) - _points(reference.per_class[name]["ap50_95"]))
        for name, ap in candidate.per_class.items() if name in reference.per_class
    }
    is_reference = candidate.key == reference.key
    passed = not math.isnan(delta) and -delta <= max_drop
    return {
        "map50": _json(candidate.map50),
        "map50_95": _json(candidate.map50_95),
        "delta_map50_95": _round(delta),
        "per_class": {name: {"ap50_95": _json(ap["ap50_95"]), "ap50": _json(ap["ap50"]),
                             "instances": ap["instances"]}
                      for name, ap in candidate.per_class.items()},
        "per_class_delta": per_class_delta,
        "agreement": _round(agreement(reference.detections, candidate.detections, conf=conf),
                            4),
        **box_score_agreement(reference.detections, candidate.detections, conf=conf),
        "reference": reference.key,
        "max_drop": max_drop,
        "images": candidate.images,
        "gate": "reference" if is_reference else ("passed" if passed else "failed"),
    }


def agreement(reference: dict[int, Detections], candidate: dict[int, Detections], *,
              conf: float, iou: float = MATCH_IOU) -> float:
    """Fraction of reference detections (score >= conf) matched one-to-one by a candidate
    detection of the same class (score >= conf) at IoU >= ``iou``; 1.0 when there are none."""
    total = matched = 0
    for image_id, ref in reference.items():
        keep_r = ref.confidence >= conf
        cand = candidate.get(image_id)
        total += int(keep_r.sum())
        if cand is None or not keep_r.any():
            continue
        keep_c = cand.confidence >= conf
        matched += _greedy_matches(ref.xyxy[keep_r], ref.class_id[keep_r],
                                   cand.xyxy[keep_c], cand.class_id[keep_c], iou)
    return matched / total if total else 1.0


def box_score_agreement(reference: dict[int, Detections], candidate: dict[int, Detections],
                        *, conf: float, iou: float = MATCH_IOU) -> dict[str, float | None]:
    """How closely matched detections agree: mean IoU of the matched boxes and mean
    |score difference| (None when nothing matched)."""
    ious, diffs = [], []
    for image_id, ref in reference.items():
        cand = candidate.get(image_id)
        keep_r = ref.confidence >= conf
        if cand is None or not keep_r.any():
            continue
        keep_c = cand.confidence >= conf
        pairs: list[tuple[int, int, float]] = []
        _greedy_matches(ref.xyxy[keep_r], ref.class_id[keep_r], cand.xyxy[keep_c],
                        cand.class_id[keep_c], iou, pairs=pairs)
        for i, j, value in pairs:
            ious.append(value)
            diffs.append(abs(float(ref.confidence[keep_r][i]) - float(cand.confidence[keep_c][j])))
    return {"box_iou_mean": _round(float(np.mean(ious)), 4) if ious else None,
            "score_diff_mean": _round(float(np.mean(diffs)), 4) if diffs else None}


def _greedy_matches(a: np.ndarray, a_cls: np.ndarray, b: np.ndarray, b_cls: np.ndarray,
                    threshold: float, *, pairs: list | None = None) -> int:
    if not len(a) or not len(b):
        return 0
    ious = _iou(a, b)
    ious[a_cls[:, None] != b_cls[None, :]] = 0.0
    count = 0
    # Best pairs first, each box used once: the matching COCOeval and trackers use.
    for flat in np.argsort(-ious, axis=None):
        i, j = divmod(int(flat), ious.shape[1])
        if ious[i, j] < 0:  # its row or column is already taken
            continue
        if ious[i, j] < threshold:
            break
        count += 1
        if pairs is not None:
            pairs.append((i, j, float(ious[i, j])))
        ious[i, :] = -1.0
        ious[:, j] = -1.0
    return count


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _points(value: float) -> float:
    return 100.0 * value if not math.isnan(value) else math.nan


def _round(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(float(value), digits)


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def with_accuracy(artifact: Artifact, accuracy: dict[str, Any], **details: Any) -> Artifact:
    """The artifact with its gate results (and extra details such as latency) recorded."""
    return replace(artifact, accuracy=accuracy, details={**artifact.details, **details})


# --- fallbacks -------------------------------------------------------------------------------


def fallbacks(fmt: Format, job: ExportJob | None, *, failing: Path, dataset: Dataset,
              max_drop: float, output: OutputSpec,
              options: dict[str, Any] | None = None,
              search: Any = None) -> Iterator[Fallback]:
    """The ways to recover an artifact that failed the gate, cheapest first.

    Yields ``(name, run)``; ``run()`` re-exports (with the exporter's ``options`` as first
    given, e.g. the INT8 scheme) and returns an ``ExportedFile``. First the one every format
    shares, ``keep-float-tail`` (the decode/score tail back to float, when it was quantized);
    then, for INT8, the format's own, as its exporter declares them (``Exporter.fallbacks``:
    mixed precision from the export's layer ranking, ``search``, for ONNX and OpenVINO, then
    Q/DQ placement for ONNX; dynamic activations for TFLite). The INT8 ones trade speed for
    accuracy; the report records each attempt and its latency.
    """
    from . import EXPORTERS

    if job is None or job.precision is Precision.FP32:
        return  # a float artifact that drops is a conversion bug, not a precision trade-off
    exporter = EXPORTERS.load(fmt.value)
    export_fn = functools.partial(exporter.export, **(options or {}))
    if not job.keep_float_tail:
        job = replace(job, keep_float_tail=True)
        yield "keep-float-tail", lambda: export_fn(job)
    if job.precision is not Precision.INT8:
        return
    yield from exporter.fallbacks(GateFailure(job=job, failing=failing, dataset=dataset,
                                              max_drop=max_drop, output=output,
                                              export=export_fn, search=search))
