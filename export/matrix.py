"""The format x precision matrix of one export: produce, add, measure, fall back, report.

Each cell fails on its own: a converter that cannot take the model costs that artifact only,
and the bundle keeps every artifact that succeeded, each marked with what was measured.
"""

from __future__ import annotations

import math
import shutil
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Artifact, Bundle, BundleWriter, Format, Precision
from edgekit.data.dataset import Dataset, check_labels, load_dataset
from edgekit.errors import DatasetError, EdgekitError, ModelError

from .calibration import DEFAULT_SAMPLES, Calibration, load_calibration
from .gate import (
    DEFAULT_MAX_DROP,
    Measurement,
    compare,
    fallbacks,
    measure,
    rescored,
    with_accuracy,
)
from .jobs import ExportedFile, ExportJob
from .labelfree import Unlabelled, frames_dataset, note, pseudo_labelled

__all__ = ["Cell", "Matrix"]

_REFERENCE = (Format.ONNX, Precision.FP32)


@dataclass(kw_only=True)
class Cell:
    """One (format, precision) of the matrix and what became of it."""

    format: Format
    precision: Precision
    status: str = "pending"  # ok | export failed | gate failed
    error: str | None = None
    seconds: float = 0.0
    fallback: str | None = None
    tried: list[str] = field(default_factory=list)
    # Every measured version of the artifact, first export then each fallback: what each
    # one cost in accuracy and speed, so a user sees the trade the gate made.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    exported: ExportedFile | None = None
    job: ExportJob | None = None

    @property
    def key(self) -> str:
        return f"{self.format.value}/{self.precision.value}"


class Matrix:
    """Runs the cells of one export; ``export()`` drives it (see ``edgekit.export``)."""

    def __init__(self, *, loaded: Any, base: dict[str, Any], work: Path,
                 cells: list[tuple[Format, Precision]], say: Any,
                 max_drop: float = DEFAULT_MAX_DROP, scheme: str | None = None,
                 threads: int = 2, address: str | None = None,
                 data: str | Path | None = None) -> None:
        self.loaded, self.base, self.work, self.say = loaded, base, work, say
        # A Ray cluster sharing the gate's images (None: here), and the validation set's
        # path, which its workers open.
        self.address, self.data = address, data
        self.cells = [Cell(format=f, precision=p) for f, p in cells]
        self.max_drop, self.scheme, self.threads = float(max_drop), scheme, threads
        self.calibration: Calibration | None = None
        self.dataset: Dataset | None = None
        self.label_free: Unlabelled | None = None
        self.conf = 0.25  # the manifest's threshold, read when the gate runs
        self.measurements: dict[str, Measurement] = {}
        self._step, self._steps = 0, len(self.cells)

    # --- inputs ----------------------------------------------------------------------------

    def prepare(self, *, calib: Any, val: Any, calib_count: int | None) -> None:
        """Loads the calibration tensors (if INT8 is asked) and the validation set."""
        spec, labels = self.base["spec"], self.base["labels"]
        if isinstance(val, Unlabelled):
            self.label_free = val
            self.dataset = frames_dataset(val, labels, self.work / "label-free")
            self._steps += len(self.cells)
            self.say(f"validation: {len(self.dataset)} frames from {val.source}, no labels: "
                     "the fp32 artifact's detections are the reference (label-free)")
        elif val is not None:
            self.dataset = val if isinstance(val, Dataset) else load_dataset(val)
            check_labels(self.dataset.labels, labels, source=self.dataset.root)
            self._steps += len(self.cells)
            self.say(f"validation: {len(self.dataset)} images from {self.dataset.root}")
        if calib is not None and any(c.precision is Precision.INT8 for c in self.cells):
            self.calibration = load_calibration(calib, spec,
                                                count=calib_count or DEFAULT_SAMPLES)
            self.say(f"calibration: {len(self.calibration)} images from "
                     f"{self.calibration.source}")

    # --- export ----------------------------------------------------------------------------

    def export_all(self) -> None:
        """Runs every cell's exporter; failures are recorded, not raised."""
        from . import EXPORTERS

        for cell in self.cells:
            self._progress(f"{cell.key}: exporting")
            start = time.perf_counter()
            if (cell.format, cell.precision) == _REFERENCE:
                cell.exported = ExportedFile(path=self.base["onnx"])
            else:
                cell.job = self._job(cell)
                cell.exported, cell.error = _attempt(
                    lambda c=cell: EXPORTERS.load(c.format.value).export(c.job, **self._options(c)))
            cell.seconds = time.perf_counter() - start
            if cell.error:
                cell.status = "export failed"
                self.say(f"{cell.key}: FAILED to export: {cell.error}")

    def _job(self, cell: Cell) -> ExportJob:
        tensors = self.calibration.tensors if self.calibration else None
        return ExportJob(model=self.loaded, onnx_fp32=self.base["onnx"], spec=self.base["spec"],
                         labels=self.base["labels"], precision=cell.precision,
                         workdir=self.work / f"{cell.format.value}-{cell.precision.value}",
                         calibration=tensors if cell.precision is Precision.INT8 else None)

    def _options(self, cell: Cell) -> dict[str, Any]:
        if cell.format is Format.ONNX and cell.precision is Precision.INT8 and self.scheme:
            return {"scheme": self.scheme}
        return {}

    # --- bundle ----------------------------------------------------------------------------

    def add_files(self, writer: BundleWriter) -> None:
        """Adds every exported file (the reference is already in) to the bundle."""
        for cell in self.cells:
            if cell.exported is not None and (cell.format, cell.precision) != _REFERENCE:
                _add(writer, cell)

    def check(self, writer: BundleWriter) -> None:
        """Parity of every artifact with the golden outputs; with a validation set, the gate
        (and its fallbacks) for every artifact. Results go into the staged manifest."""
        self._gate(writer)
        for artifact in list(writer.manifest.artifacts):  # the final files, after fallbacks
            diff = self._golden_diff(Bundle(writer.staging, writer.manifest), artifact)
            _replace(writer, replace(artifact, details={**artifact.details,
                                                        "golden_max_abs_diff": diff}))

    def _gate(self, writer: BundleWriter) -> None:
        if self.dataset is None:
            for cell in self.cells:
                cell.status = "ok" if cell.status == "pending" else cell.status
            return
        view = lambda: Bundle(writer.staging, writer.manifest)  # noqa: E731 (re-read on change)
        reference = self._measure(view(), _find(writer, *_REFERENCE))
        conf = self.conf = writer.manifest.output.conf_threshold
        if self.label_free is not None:
            # The reference's confident detections become the ground truth; the reference
            # is re-scored against them (no second inference pass).
            self.dataset = pseudo_labelled(self.dataset, reference.detections, conf=conf)
            if not sum(len(item.xyxy) for item in self.dataset.items):
                raise DatasetError(
                    f"The label-free gate has nothing to compare: the fp32 model made no "
                    f"detection at score >= {conf:g} on {len(self.dataset)} frames of "
                    f"{self.label_free.source}.",
                    hint="Use footage where the model sees its objects, or a labelled --val.")
            reference = rescored(reference, self.dataset)
            self.measurements[reference.key] = reference
        for cell in self.cells:
            if cell.status != "pending":
                continue
            artifact = _find(writer, cell.format, cell.precision)
            result = self._measure(view(), artifact) if cell.key != reference.key else reference
            verdict = compare(reference, result, max_drop=self.max_drop,
                              conf=writer.manifest.output.conf_threshold)
            if verdict["gate"] == "failed":
                verdict, result = self._fall_back(writer, cell, reference, verdict)
            verdict["fallback"] = cell.fallback
            if self.label_free is not None:
                verdict["label_free"] = True
                verdict["note"] = note(self.label_free.source, len(self.dataset), conf)
            verdict["executed_on"] = result.executed_on
            _replace(writer, with_accuracy(_find(writer, cell.format, cell.precision), verdict,
                                           latency_ms_median=_round(result.latency_ms),
                                           latency_threads=self.threads))
            cell.status = "gate failed" if verdict["gate"] == "failed" else "ok"

    def _measure(self, bundle: Bundle, artifact: Artifact) -> Measurement:
        self._progress(f"{artifact.key}: measuring on {len(self.dataset)} images")
        result = measure(bundle, artifact, self.dataset, threads=self.threads,
                         address=self.address, data=self.data)
        self.measurements[artifact.key] = result
        latency = ("latency not measured (sharded)" if math.isnan(result.latency_ms)
                   else f"{result.latency_ms:.1f} ms median")
        self.say(f"{artifact.key}: mAP@0.5:0.95 {_pct(result.map50_95)}, {latency} "
                 f"({result.executed_on})")
        return result

    def _fall_back(self, writer: BundleWriter, cell: Cell, reference: Measurement,
                   verdict: dict[str, Any]) -> tuple[dict[str, Any], Measurement]:
        """Tries each fallback of the cell's format until one passes; keeps the best."""
        best = (verdict, self.measurements[cell.key], cell.exported)
        cell.attempts.append(_attempt_record("as exported", verdict, best[1]))
        self.say(f"{cell.key}: drops {-verdict['delta_map50_95']:.2f} points "
                 f"(> {self.max_drop}); trying fallbacks")
        staged = Path(writer.staging) / _find(writer, cell.format, cell.precision).file
        # A copy: each fallback overwrites the staged file, and every harmful-layer ranking
        # must start from the artifact as first exported.
        failing = self.work / f"gate-failed-{cell.format.value}-{cell.precision.value}" \
            / staged.name
        failing.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, failing)
        for name, run in fallbacks(cell.format, cell.job, failing=failing,
                                   dataset=self.dataset, max_drop=self.max_drop,
                                   output=writer.manifest.output,
                                   options=self._options(cell)):
            cell.tried.append(name)
            self._steps += 2  # its export and its measurement
            self._progress(f"{cell.key}: fallback {name}")
            exported, error = _attempt(run)
            if error:
                self.say(f"{cell.key}: fallback {name} failed: {error}")
                cell.attempts.append({"name": name, "error": error})
                continue
            cell.exported = exported
            artifact = _add(writer, cell)
            result = self._measure(Bundle(writer.staging, writer.manifest), artifact)
            again = compare(reference, result, max_drop=self.max_drop,
                            conf=writer.manifest.output.conf_threshold)
            cell.attempts.append(_attempt_record(name, again, result))
            if _delta(again) > _delta(best[0]):
                best = (again, result, exported)
            if again["gate"] == "passed":
                cell.fallback = name
                return again, result
        # None passed: the best attempt stays in the bundle, marked failed.
        if best[2] is not cell.exported:
            cell.exported = best[2]
            _add(writer, cell)
        verdict, result = best[0], best[1]
        self.measurements[cell.key] = result  # the report describes the file that was kept
        self.say(f"{cell.key}: FAILS the accuracy gate ({verdict['delta_map50_95']:+.2f} "
                 f"points; tried {', '.join(cell.tried) or 'no fallback'})")
        return verdict, result

    def _golden_diff(self, bundle: Bundle, artifact: Artifact) -> float | None:
        """Max |diff| of the artifact's outputs from the fp32 ONNX outputs on golden.npz."""
        from edgekit.backends import load_backend
        from edgekit.detector import input_feed, make_head_checked

        from .gate import backend_options
        from .parity import GOLDEN_FILE

        with np.load(bundle.path / GOLDEN_FILE) as golden:
            inputs, outputs = golden["inputs"], golden["outputs"]
        try:
            backend = load_backend(bundle.file(artifact), artifact.format,
                                   options=backend_options(bundle, artifact, threads=self.threads))
            feed = input_feed(bundle.manifest, backend,
                              make_head_checked(bundle.manifest, backend))
            diffs = [float(np.max(np.abs(np.asarray(backend.run(feed(x))[0], np.float32) - y)))
                     for x, y in zip(inputs, outputs, strict=True)]
        except (EdgekitError, ValueError) as exc:  # ValueError: shapes differ
            self.say(f"{artifact.key}: cannot compare with the golden outputs: {exc}")
            return None
        return _round(max(diffs), 6)

    # --- report ----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Every cell with its status, error, time, fallback and measured figures."""
        cells = []
        for cell in self.cells:
            m = self.measurements.get(cell.key)
            cells.append({
                "key": cell.key, "format": cell.format.value, "precision": cell.precision.value,
                "status": cell.status, "error": cell.error, "seconds": round(cell.seconds, 2),
                "fallback": cell.fallback, "fallbacks_tried": cell.tried,
                "attempts": cell.attempts,
                "map50_95": None if m is None or math.isnan(m.map50_95) else m.map50_95,
            })
        return {"cells": cells, "max_drop": self.max_drop,
                "validation": (self.label_free.source if self.label_free else
                               str(self.dataset.root) if self.dataset else None),
                "label_free": self.label_free is not None,
                "label_free_note": (note(self.label_free.source, len(self.dataset),
                                         self.conf)
                                    if self.label_free and self.dataset else None),
                "validation_images": len(self.dataset) if self.dataset else 0,
                "calibration": self.calibration.source if self.calibration else None,
                "calibration_images": len(self.calibration) if self.calibration else 0}

    def _progress(self, text: str) -> None:
        self._step += 1
        self.say(f"[{self._step}/{self._steps}] {text}")


def _attempt(run: Any) -> tuple[ExportedFile | None, str | None]:
    """Runs one exporter; an error becomes that cell's failure, not the whole export's."""
    try:
        return run(), None
    except EdgekitError as exc:
        return None, exc.message
    except ImportError as exc:  # an exporter module that is not installed (or not written)
        return None, f"the exporter is not available in this installation ({exc})"
    except Exception as exc:  # a converter's own bug: keep the other artifacts, say where
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return None, (f"{type(exc).__name__}: {str(exc).strip()[:300]} "
                      f"(in {Path(frame.filename).name}:{frame.lineno})")


def _attempt_record(name: str, verdict: dict[str, Any], result: Measurement) -> dict[str, Any]:
    return {"name": name, "delta_map50_95": verdict["delta_map50_95"],
            "gate": verdict["gate"], "latency_ms_median": _round(result.latency_ms)}


def _add(writer: BundleWriter, cell: Cell) -> Artifact:
    exported = cell.exported
    assert exported is not None
    details = {k: v for k, v in exported.details.items() if k != "companions"}
    return writer.add_file(exported.path, format=cell.format, precision=cell.precision,
                           name=exported.path.name, companions=list(exported.companions),
                           **details)


def _find(writer: BundleWriter, fmt: Format, precision: Precision) -> Artifact:
    key = f"{fmt.value}/{precision.value}"
    found = next((a for a in writer.manifest.artifacts if a.key == key), None)
    if found is None:
        raise ModelError(f"internal: artifact {key} is not staged")
    return found


def _replace(writer: BundleWriter, artifact: Artifact) -> None:
    writer.update(artifacts=[artifact if a.key == artifact.key else a
                             for a in writer.manifest.artifacts])


def _round(value: float, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _delta(verdict: dict[str, Any]) -> float:
    value = verdict.get("delta_map50_95")
    return -math.inf if value is None else float(value)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"
