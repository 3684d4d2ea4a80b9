"""The health check a device runs on a freshly activated bundle, with its own edgekit.

It loads the bundle's artifact with the runtime the device will use in production, replays the
golden inputs recorded at export (``provenance.parity["golden"]``: preprocessed ``inputs`` and
the exported model's ``outputs``, written by export/parity.py) and compares the outputs within
a tolerance that depends on the artifact's precision, then times a few full detector calls
against a latency limit.

Decision: a bundle without a golden file FAILS the check (a model that merely loads can still
be the wrong model) unless the caller passed ``golden=False`` (``--no-golden``), which then
checks loading, one full detection and latency only.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Bundle, Precision
from edgekit.errors import EdgekitError
from edgekit.heads import HEADS


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """How close a replayed output must be: ``|out - ref| <= atol + rtol * |ref|`` for at
    least ``min_fraction`` of the elements."""

    atol: float
    rtol: float
    min_fraction: float = 1.0


# The golden outputs come from the fp32 ONNX export. fp32 on another runtime or CPU differs by
# summation order only; fp16 keeps about 3 decimal digits; int8 moves boxes by a few pixels and
# scores by a few hundredths, and a few outliers are normal (hence min_fraction).
TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(atol=1e-3, rtol=1e-3),
    Precision.FP16: Tolerance(atol=2e-2, rtol=2e-2),
    Precision.INT8: Tolerance(atol=5e-2, rtol=5e-2, min_fraction=0.99),
}


def compare(output: np.ndarray, reference: np.ndarray, tolerance: Tolerance) -> dict[str, Any]:
    """Compares one output with its reference; returns the figures and whether it passes."""
    if output.shape != reference.shape:
        return {"ok": False, "reason": f"output shape {list(output.shape)} differs from the "
                                       f"golden {list(reference.shape)}"}
    diff = np.abs(output.astype(np.float64) - reference)
    within = diff <= tolerance.atol + tolerance.rtol * np.abs(reference)
    fraction = float(within.mean()) if within.size else 1.0
    return {"ok": fraction >= tolerance.min_fraction, "max_abs_diff": float(diff.max()),
            "within": fraction}


def check_bundle(directory: str | Path, *, golden: bool = True, max_latency_ms: float = 2000.0,
                 runs: int = 10) -> dict[str, Any]:
    """Checks the one artifact a device holds; never raises for a bad model.

    Returns:
        ``{"ok": bool, "reason": str | None, "artifact", "executed_on", "golden": {...},
        "latency_ms": median, "max_latency_ms"}``.
    """
    result: dict[str, Any] = {"ok": False, "reason": None, "max_latency_ms": max_latency_ms}
    try:
        _check(Path(directory), result, golden=golden, max_latency_ms=max_latency_ms,
               runs=max(runs, 1))
    except EdgekitError as exc:
        result["reason"] = exc.message
    except Exception as exc:  # noqa: BLE001 - any runtime failure is a failed check, said plainly
        result["reason"] = f"{type(exc).__name__}: {exc}"
    return result


def _check(directory: Path, result: dict[str, Any], *, golden: bool, max_latency_ms: float,
           runs: int) -> None:
    from edgekit.detector import Detector

    bundle = Bundle.load(directory)
    if len(bundle.manifest.artifacts) != 1:
        raise EdgekitError(f"{directory} holds {len(bundle.manifest.artifacts)} artifacts; a "
                           "flashed version holds exactly one.")
    artifact = bundle.manifest.artifacts[0]
    detector = Detector(bundle, artifact)
    result.update(artifact=artifact.key, executed_on=detector.backend.executed_on)
    if golden:
        result["golden"] = _replay(bundle, detector, TOLERANCES[artifact.precision])
        if not result["golden"]["ok"]:
            result["reason"] = result["golden"]["reason"]
            return
    else:
        result["golden"] = {"ok": None, "reason": "skipped (--no-golden)"}
    spec = bundle.manifest.input
    image = np.full((spec.height, spec.width, 3), 114, np.uint8)
    detector(image)  # warm-up, and proof the whole pipeline (pre, run, post) works
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detector(image)
        times.append((time.perf_counter() - start) * 1e3)
    result["latency_ms"] = statistics.median(times)
    if result["latency_ms"] > max_latency_ms:
        result["reason"] = (f"median latency {result['latency_ms']:.1f} ms is over the limit "
                            f"{max_latency_ms:.1f} ms")
        return
    result["ok"] = True


def _within_export(figures: dict[str, Any], measured: float | None,
                   tolerance: Tolerance) -> bool:
    """Whether a reduced-precision output is as close to the fp32 golden outputs as the same
    file was when it was exported (``golden_max_abs_diff``, measured by the export).

    The golden outputs are fp32's; an int8 file that passed the accuracy gate still differs
    from them by its quantization error (the sample at 64 px: 11 px on a box coordinate,
    92% of elements within 5%), which no fixed tolerance separates from a broken model. The
    device must not be worse than the export measured, with the precision's own margin.
    """
    if measured is None or "max_abs_diff" not in figures:
        return False
    return figures["max_abs_diff"] <= measured + max(tolerance.atol, tolerance.rtol * measured)


def _replay(bundle: Bundle, detector: Any, tolerance: Tolerance) -> dict[str, Any]:
    name = bundle.manifest.provenance.parity.get("golden")
    if not name:
        return {"ok": False, "reason": "the bundle has no golden inputs (provenance.parity."
                "golden is empty); re-export it, or flash with --no-golden"}
    path = bundle.path / name
    if not path.is_file():
        return {"ok": False, "reason": f"the golden file '{name}' is missing on the device"}
    with np.load(path) as data:
        inputs, outputs = data["inputs"], data["outputs"]
    measured = detector.artifact.details.get("golden_max_abs_diff")
    if detector.artifact.precision is Precision.FP32:
        measured = None  # fp32 must match the golden outputs themselves
    worst: dict[str, Any] = {"ok": True, "max_abs_diff": 0.0, "within": 1.0}
    for i, (tensor, reference) in enumerate(zip(inputs, outputs, strict=True)):
        # Golden inputs are preprocessed in the manifest's layout, which is what the Detector
        # feeds its backend (an NHWC .tflite backend transposes them itself): transposing here
        # too made every .tflite health check fail (XNNPACK "failed to reshape").
        out = detector.backend.run(detector.feed(np.ascontiguousarray(tensor)))[0]
        # An end-to-end head's top-k rows are matched, not compared by position.
        figures = compare(*HEADS.load(bundle.manifest.output.kind).comparable(
            np.asarray(out), reference), tolerance)
        if not figures["ok"] and _within_export(figures, measured, tolerance):
            figures["ok"] = True
        if not figures["ok"]:
            detail = figures.get("reason") or (
                f"max |diff| {figures['max_abs_diff']:.4g}, {figures['within']:.1%} within "
                f"atol {tolerance.atol} + rtol {tolerance.rtol}"
                + (f"; the export measured max |diff| {measured:.4g}" if measured else ""))
            return {"ok": False, "images": len(inputs),
                    "reason": f"golden image {i} does not match: {detail}"}
        worst = {"ok": True, "max_abs_diff": max(worst["max_abs_diff"], figures["max_abs_diff"]),
                 "within": min(worst["within"], figures["within"])}
    return {**worst, "images": len(inputs), "export_max_abs_diff": measured, "reason": None}
