"""The format x precision matrix of one export: produce, measure, fall back, publish, report.

Each cell fails on its own: a converter that cannot take the model costs that artifact only,
and the bundle keeps every artifact that succeeded, each marked with what was measured.
Cells run one after the other, each to its end: exported, measured on the validation set
(fallbacks included), compared with the golden outputs, then published into the bundle at
the destination (``publish.py``), so a later failure, a kill or the OOM killer loses nothing
finished (issue 16). Candidates are measured in a scratch bundle inside the work directory.

The fallback search is bounded by a time budget: a candidate whose expected cost (the last
measured attempt of that cell) would overrun it is not started, and the best measured one
stays. Progress lines carry an ETA from the mean time per step so far.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Artifact, Bundle, Format, Manifest, Precision, sha256_file
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
from .publish import BundleDir, stage_beside, swap_into_place
from .scratch import ExportInterrupted
from .sensitivity import SearchState

__all__ = ["Cell", "Matrix", "Publisher", "REPORT", "DEFAULT_TIME_BUDGET"]

REPORT = "export_report.json"  # not an artifact: what was asked, what came out, and why
# Seconds the whole export may spend before the fallback search stops starting candidates
# (issue 16: the full 3x3 export at 640 within 10 minutes on 2 cores).
DEFAULT_TIME_BUDGET = 600.0

_REFERENCE = (Format.ONNX, Precision.FP32)


@dataclass(kw_only=True)
class Cell:
    """One (format, precision) of the matrix and what became of it."""

    format: Format
    precision: Precision
    status: str = "pending"  # ok | export failed | measure failed | gate failed
    error: str | None = None
    seconds: float = 0.0
    fallback: str | None = None
    tried: list[str] = field(default_factory=list)
    # Every measured version of the artifact, first export then each fallback: what each
    # one cost in accuracy and speed, so a user sees the trade the gate made.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    exported: ExportedFile | None = None
    job: ExportJob | None = None
    measure_seconds: float = 0.0  # the first measurement's, to foresee a fallback's cost

    @property
    def key(self) -> str:
        return f"{self.format.value}/{self.precision.value}"


class Matrix:
    """Runs the cells of one export; ``export()`` drives it (see ``edgekit.export``)."""

    def __init__(self, *, loaded: Any, base: dict[str, Any], work: Path,
                 cells: list[tuple[Format, Precision]], say: Any,
                 max_drop: float = DEFAULT_MAX_DROP, scheme: str | None = None,
                 threads: int = 2, address: str | None = None,
                 data: str | Path | None = None,
                 time_budget: float | None = DEFAULT_TIME_BUDGET,
                 batch: int | str = 1) -> None:
        self.loaded, self.base, self.work, self.say = loaded, base, work, say
        # A Ray cluster sharing the gate's images (None: here), and the validation set's
        # path, which its workers open.
        self.address, self.data = address, data
        self.cells = [Cell(format=f, precision=p) for f, p in cells]
        self.max_drop, self.scheme, self.threads = float(max_drop), scheme, threads
        self.batch = batch  # images per call of every artifact (export --batch, batch.py)
        self.calibration: Calibration | None = None
        self.dataset: Dataset | None = None
        self.label_free: Unlabelled | None = None
        self.conf = 0.25  # the manifest's threshold, read when the gate runs
        self.measurements: dict[str, Measurement] = {}
        self._step, self._steps = 0, len(self.cells)
        self.started = time.monotonic()
        self.deadline = None if time_budget is None else self.started + float(time_budget)
        self.time_budget = time_budget
        self.search = SearchState(say=say)  # the layer ranking: measured once, every format

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

    # --- the cells, one to its end after the other ------------------------------------------

    def run(self, publisher: Publisher, manifest: Manifest) -> None:
        """Exports, measures and publishes every cell; failures are recorded, not raised.

        Args:
            publisher: Where each finished artifact goes (the bundle at the destination).
            manifest: The bundle's manifest without artifacts (labels, input, output).
        """
        staged = BundleDir(self.work / "measuring", manifest)
        from .parity import GOLDEN_FILE

        staged.copy_in(self.base["golden"], GOLDEN_FILE)
        reference: Measurement | None = None
        for cell in self.cells:
            self._progress(f"{cell.key}: exporting")
            start = time.perf_counter()
            self._export(cell)
            cell.seconds = time.perf_counter() - start
            if cell.error:
                cell.status = "export failed"
                self.say(f"{cell.key}: FAILED to export: {cell.error}")
                publisher.write_report(self.report())
                continue
            artifact = _add(staged, cell)
            if (cell.format, cell.precision) == _REFERENCE:
                # Without its reference nothing can be gated: a failure here ends the export.
                artifact = self._finish(staged, cell, artifact, None)
                reference = self.measurements.get(cell.key)
            else:
                try:
                    artifact = self._finish(staged, cell, artifact, reference)
                except ExportInterrupted:
                    raise
                except Exception as exc:  # an exported file that will not load or run
                    # The file exists but cannot be measured (a runtime refuses it, a
                    # converter's bug): that cell fails, the finished ones stay.
                    cell.status, cell.error = "measure failed", _describe(exc)
                    staged.update(artifacts=[a for a in staged.manifest.artifacts
                                             if a.key != cell.key])
                    self.say(f"{cell.key}: FAILED to load or measure: {cell.error}")
                    publisher.write_report(self.report())
                    continue
            publisher.publish(staged.bundle, artifact)
            publisher.write_report(self.report())
            self.say(f"{cell.key}: in the bundle ({cell.status})")

    def _finish(self, staged: BundleDir, cell: Cell, artifact: Artifact,
                reference: Measurement | None) -> Artifact:
        """Gates an exported cell (or measures the reference), pins its batch and records
        its golden replay; returns the artifact as it goes into the bundle."""
        if self.dataset is None:
            cell.status = "ok"
        elif (cell.format, cell.precision) == _REFERENCE:
            self._reference(staged, artifact)
            artifact = _find(staged, *_REFERENCE)
            cell.status = "ok"
        elif reference is None:
            raise ModelError("The fp32 ONNX reference could not be measured, so this "
                             "artifact cannot be gated.")
        else:
            artifact = self._gate(staged, cell, reference)
        artifact = self._pin_batch(staged, artifact)
        diff = self._golden_diff(staged.bundle, artifact)
        artifact = replace(artifact, details={**artifact.details, "golden_max_abs_diff": diff})
        staged.replace_artifact(artifact)
        return artifact

    def _export(self, cell: Cell) -> None:
        from . import EXPORTERS

        if (cell.format, cell.precision) == _REFERENCE:
            cell.exported = ExportedFile(path=self.base["onnx"], details={
                "opset": self.base["info"]["opset"],
                "simplified": self.base["info"]["simplified"],
                "output_shape": self.base["info"]["output_shape"], "layout": "nchw"})
            return
        cell.job = self._job(cell)
        cell.exported, cell.error = _attempt(
            lambda c=cell: EXPORTERS.load(c.format.value).export(c.job, **self._options(c)))

    def _job(self, cell: Cell) -> ExportJob:
        tensors = self.calibration.tensors if self.calibration else None
        return ExportJob(model=self.loaded, onnx_fp32=self.base["onnx"], spec=self.base["spec"],
                         labels=self.base["labels"], precision=cell.precision,
                         workdir=self.work / f"{cell.format.value}-{cell.precision.value}",
                         calibration=tensors if cell.precision is Precision.INT8 else None,
                         batch=self.batch)

    def _options(self, cell: Cell) -> dict[str, Any]:
        if cell.format is Format.ONNX and cell.precision is Precision.INT8 and self.scheme:
            return {"scheme": self.scheme}
        return {}

    def _pin_batch(self, staged: BundleDir, artifact: Artifact) -> Artifact:
        """Fixes a finished file at ``--batch N`` (the gate and its fallbacks ran it
        batch-free, one image at a time) and records its batch; the golden replay that
        follows runs the pinned file."""
        if self.batch == 1:
            return artifact
        from . import EXPORTERS
        from .batch import DYNAMIC

        pin = EXPORTERS.load(artifact.format.value).pin_batch
        path = staged.path / artifact.file
        if pin is not None and self.batch != DYNAMIC:
            pin(path, int(self.batch))
        details = {**artifact.details, "batch": self.batch}
        if details.get("companions"):
            details["companions"] = {
                name: {"sha256": sha256_file(staged.path / name),
                       "size": (staged.path / name).stat().st_size}
                for name in details["companions"]}
        artifact = replace(artifact, sha256=sha256_file(path), size=path.stat().st_size,
                           details=details)
        staged.replace_artifact(artifact)
        return artifact

    # --- the gate ----------------------------------------------------------------------------

    def _reference(self, staged: BundleDir, artifact: Artifact) -> Measurement:
        """Measures the fp32 ONNX reference (in the label-free gate: makes it the truth)."""
        reference = self._measure(staged.bundle, artifact)
        conf = self.conf = staged.manifest.output.conf_threshold
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
        verdict = compare(reference, reference, max_drop=self.max_drop, conf=conf)
        self._record(staged, _find(staged, *_REFERENCE), verdict, reference, fallback=None)
        return reference

    def _gate(self, staged: BundleDir, cell: Cell, reference: Measurement) -> Artifact:
        artifact = _find(staged, cell.format, cell.precision)
        cell.measure_seconds = time.perf_counter()
        result = self._measure(staged.bundle, artifact)
        cell.measure_seconds = time.perf_counter() - cell.measure_seconds
        verdict = compare(reference, result, max_drop=self.max_drop, conf=self.conf)
        if verdict["gate"] == "failed":
            verdict, result = self._fall_back(staged, cell, reference, verdict)
        cell.status = "gate failed" if verdict["gate"] == "failed" else "ok"
        return self._record(staged, _find(staged, cell.format, cell.precision), verdict,
                            result, fallback=cell.fallback)

    def _record(self, staged: BundleDir, artifact: Artifact, verdict: dict[str, Any],
                result: Measurement, *, fallback: str | None) -> Artifact:
        verdict["fallback"] = fallback
        if self.label_free is not None:
            verdict["label_free"] = True
            verdict["note"] = note(self.label_free.source, len(self.dataset), self.conf)
        verdict["executed_on"] = result.executed_on
        artifact = with_accuracy(artifact, verdict, latency_ms_median=_round(result.latency_ms),
                                 latency_threads=self.threads)
        staged.replace_artifact(artifact)
        return artifact

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

    def _fall_back(self, staged: BundleDir, cell: Cell, reference: Measurement,
                   verdict: dict[str, Any]) -> tuple[dict[str, Any], Measurement]:
        """Tries the cell's fallbacks, cheapest first, until one passes or the time budget
        would be overrun; keeps the best measured."""
        best = (verdict, self.measurements[cell.key], cell.exported)
        cell.attempts.append({**_attempt_record("as exported", verdict, best[1]),
                              **_float_facts(cell.exported)})
        self.say(f"{cell.key}: drops {-verdict['delta_map50_95']:.2f} points "
                 f"(> {self.max_drop}); trying fallbacks")
        staged_file = staged.path / _find(staged, cell.format, cell.precision).file
        # A copy: each fallback overwrites the staged file, and the layer ranking must start
        # from the artifact as first exported.
        failing = self.work / f"gate-failed-{cell.format.value}-{cell.precision.value}" \
            / staged_file.name
        failing.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged_file, failing)
        # What one more attempt costs: the first export plus its measurement, then the last.
        cost = cell.seconds + cell.measure_seconds
        for name, run in fallbacks(cell.format, cell.job, failing=failing,
                                   dataset=self.dataset, max_drop=self.max_drop,
                                   output=staged.manifest.output,
                                   options=self._options(cell), search=self.search):
            if self._out_of_time(cost):
                cell.attempts.append({"name": name, "error": "skipped: time budget"})
                self.say(f"{cell.key}: time budget ({self.time_budget:.0f} s) would be "
                         f"overrun by {name} (~{cost:.0f} s); keeping the best measured")
                break
            cell.tried.append(name)
            self._steps += 2  # its export and its measurement
            self._progress(f"{cell.key}: fallback {name}")
            began = time.perf_counter()
            exported, error = _attempt(run)
            if error:
                self.say(f"{cell.key}: fallback {name} failed: {error}")
                cell.attempts.append({"name": name, "error": error})
                continue
            cell.exported = exported
            artifact = _add(staged, cell)
            result = self._measure(staged.bundle, artifact)
            cost = time.perf_counter() - began
            again = compare(reference, result, max_drop=self.max_drop, conf=self.conf)
            cell.attempts.append({**_attempt_record(name, again, result),
                                  **_float_facts(exported)})
            if _delta(again) > _delta(best[0]):
                best = (again, result, exported)
            if again["gate"] == "passed":
                cell.fallback = name
                return again, result
        # None passed: the best attempt stays in the bundle, marked failed.
        if best[2] is not cell.exported:
            cell.exported = best[2]
            _add(staged, cell)
        verdict, result = best[0], best[1]
        self.measurements[cell.key] = result  # the report describes the file that was kept
        self.say(f"{cell.key}: FAILS the accuracy gate ({verdict['delta_map50_95']:+.2f} "
                 f"points; tried {', '.join(cell.tried) or 'no fallback'})")
        return verdict, result

    def _out_of_time(self, cost: float) -> bool:
        return self.deadline is not None and time.monotonic() + cost > self.deadline

    def _golden_diff(self, bundle: Bundle, artifact: Artifact) -> float | None:
        """Max |diff| of the artifact's outputs from the fp32 ONNX outputs on golden.npz."""
        from edgekit.backends import load_backend
        from edgekit.detector import input_feed, make_head_checked
        from edgekit.heads import HEADS

        from .gate import backend_options
        from .parity import GOLDEN_FILE

        with np.load(bundle.path / GOLDEN_FILE) as golden:
            inputs, outputs = golden["inputs"], golden["outputs"]
        try:
            backend = load_backend(bundle.file(artifact), artifact.format,
                                   options=backend_options(bundle, artifact, threads=self.threads))
            feed = input_feed(bundle.manifest, backend,
                              make_head_checked(bundle.manifest, backend))
            arrange = HEADS.load(bundle.manifest.output.kind).comparable
            diffs = [float(np.max(np.abs(np.subtract(*arrange(
                np.asarray(backend.run(feed(x))[0], np.float32), y)))))
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
                **_float_facts(cell.exported),
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
        self.say(f"[{self._step}/{self._steps}] {text}{self._eta()}")

    def _eta(self) -> str:
        """The time left, from the mean time of the steps done so far (none: no guess)."""
        done = self._step - 1
        if done < 2:
            return ""
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (self._steps - done)
        return f" (elapsed {_clock(elapsed)}, ETA {_clock(left)})"


def _attempt(run: Any) -> tuple[ExportedFile | None, str | None]:
    """Runs one exporter; an error becomes that cell's failure, not the whole export's."""
    try:
        return run(), None
    except ExportInterrupted:  # a signal stops the export, not just this cell
        raise
    except Exception as exc:
        return None, _describe(exc)


def _describe(exc: Exception) -> str:
    """One line for a cell's failure: edgekit's own message, or where a tool broke."""
    if isinstance(exc, EdgekitError):
        return exc.message
    if isinstance(exc, ImportError):  # an exporter module that is not installed
        return f"the exporter is not available in this installation ({exc})"
    frame = traceback.extract_tb(exc.__traceback__)[-1]  # a converter's own bug: say where
    return (f"{type(exc).__name__}: {str(exc).strip()[:300]} "
            f"(in {Path(frame.filename).name}:{frame.lineno})")


def _attempt_record(name: str, verdict: dict[str, Any], result: Measurement) -> dict[str, Any]:
    return {"name": name, "delta_map50_95": verdict["delta_map50_95"],
            "gate": verdict["gate"], "latency_ms_median": _round(result.latency_ms)}


def _float_facts(exported: ExportedFile | None) -> dict[str, Any]:
    """Which nodes an INT8 file kept in float (its decode tail), when its exporter says."""
    details = exported.details if exported is not None else {}
    return {k: details[k] for k in ("float_tail", "float_nodes") if k in details}


def _add(staged: BundleDir, cell: Cell) -> Artifact:
    exported = cell.exported
    assert exported is not None
    details = {k: v for k, v in exported.details.items() if k != "companions"}
    name = "model.onnx" if (cell.format, cell.precision) == _REFERENCE else exported.path.name
    return staged.add_file(exported.path, format=cell.format, precision=cell.precision,
                           name=name, companions=list(exported.companions), **details)


def _find(staged: BundleDir, fmt: Format, precision: Precision) -> Artifact:
    key = f"{fmt.value}/{precision.value}"
    found = next((a for a in staged.manifest.artifacts if a.key == key), None)
    if found is None:
        raise ModelError(f"internal: artifact {key} is not staged")
    return found


class Publisher:
    """Puts each finished artifact into the bundle at ``destination`` (``publish.py``).

    The first one (the fp32 reference) is staged beside the destination with the manifest and
    the golden outputs and swapped into place, replacing an earlier bundle there; every later
    one is added to the live bundle in place, its manifest rewritten atomically.
    """

    def __init__(self, destination: Path, manifest: Manifest, *, extras: list[Path]) -> None:
        self.destination, self.manifest, self.extras = Path(destination), manifest, extras
        self.live: BundleDir | None = None

    def publish(self, source: Bundle, artifact: Artifact) -> None:
        if self.live is not None:
            _copy_artifact(self.live, source, artifact)
            return
        staging = stage_beside(self.destination)
        try:
            first = BundleDir(staging, self.manifest)
            for extra in self.extras:
                first.copy_in(extra, extra.name)
            _copy_artifact(first, source, artifact)
            swap_into_place(staging, self.destination)
        except BaseException:  # a signal too: no staging directory stays beside the bundle
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.live = BundleDir(self.destination, first.manifest)

    def update(self, **changes: Any) -> None:
        """Changes manifest fields from now on (and in the live bundle, if there is one)."""
        self.manifest = replace(self.manifest, **changes)
        if self.live is not None:
            self.live.update(**changes)

    def write_report(self, report: dict[str, Any]) -> None:
        """The export report, rewritten after each cell (once the bundle exists)."""
        if self.live is not None:
            self.live.write_text(REPORT, json.dumps(report, indent=2, default=str) + "\n")


def _copy_artifact(target: BundleDir, source: Bundle, artifact: Artifact) -> None:
    details = {k: v for k, v in artifact.details.items() if k != "companions"}
    companions = [source.path / name for name in artifact.details.get("companions", {})]
    target.add_file(source.file(artifact), format=artifact.format,
                    precision=artifact.precision, name=artifact.file, companions=companions,
                    accuracy=artifact.accuracy, **details)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _round(value: float, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _delta(verdict: dict[str, Any]) -> float:
    value = verdict.get("delta_map50_95")
    return -math.inf if value is None else float(value)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"
