"""Host side: a PyTorch or ONNX detector in, a verified edgekit bundle out.

``import edgekit.export`` stays light (no torch, onnx, onnxruntime or OpenCV): the CLI imports
it for ``--help``. Heavy modules load inside the functions that use them.

Every artifact of the format x precision matrix is converted from one parity-checked fp32
ONNX file and, given a validation set, measured against it before it is handed over (the
accuracy gate, gate.py); the orchestration of one export lives in matrix.py.

Example:
    from edgekit.export import export
    bundle = export("sample", "out/sample", formats=("onnx", "openvino", "tflite"),
                    precisions=("fp32", "fp16", "int8"), calib="calib/images", val="val")
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.bundle import (
    MANIFEST,
    Bundle,
    Format,
    Manifest,
    Precision,
    Provenance,
    utc_now,
)
from edgekit.errors import BundleError, EdgekitError, ModelError
from edgekit.modelfile import FileOptions
from edgekit.registry import Registry

from .jobs import Exporter
from .loaders import SAMPLE, LoadedModel, load_model, tool_versions
from .shipped import SHIPPED

__all__ = ["export", "load_model", "LoadedModel", "EXPORTERS", "SAMPLE", "DEFAULT_IMGSZ",
           "DEFAULT_TIME_BUDGET", "ExportIncomplete", "ExportInterrupted", "export_onnx",
           "describe_onnx", "check_parity"]

DEFAULT_IMGSZ = 640  # the size YOLOv8/YOLO11 detectors are trained at
REPORT = "export_report.json"  # not an artifact: what was asked, what came out, and why
DEFAULT_TIME_BUDGET = 600.0  # seconds; matrix.DEFAULT_TIME_BUDGET (kept light to import)

# One entry per format: each module's ``EXPORTER`` (jobs.Exporter: its function, the tools it
# records, its gate fallbacks), loaded on first use. The fp32 ONNX file every other artifact
# is converted from is written by ``onnx.export_onnx`` before any of them.
EXPORTERS: Registry[Exporter] = Registry("exporter", {
    Format.ONNX.value: "edgekit.export.quantize_onnx:EXPORTER",
    Format.OPENVINO.value: "edgekit.export.openvino_ir:EXPORTER",
    Format.TFLITE.value: "edgekit.export.tflite:EXPORTER",
})

# Public names that live in heavy modules: imported on first access.
_LAZY = {"export_onnx": "onnx", "describe_onnx": "onnx", "check_parity": "parity",
         "ExportInterrupted": "scratch"}
# What every export runs (the source model and the fp32 ONNX); each exporter adds its own.
_BASE_TOOLS = ("torch", "onnx", "onnxslim", "edgekit")
_REFERENCE = (Format.ONNX, Precision.FP32)


class ExportIncomplete(EdgekitError):
    """The bundle was written, but some artifacts failed to export or failed the gate.

    Attributes:
        bundle: The written bundle (every artifact that succeeded, each marked).
        report: The export report (also saved in the bundle as ``export_report.json``).
    """

    exit_code = 1  # not bad input (2): the work ran and its result is below the bar

    def __init__(self, message: str, *, hint: str, bundle: Bundle,
                 report: dict[str, Any]) -> None:
        super().__init__(message, hint=hint)
        self.bundle = bundle
        self.report = report


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'edgekit.export' has no attribute '{name}'")


def export(model: Any, out: str | Path, *, formats: Iterable[Format | str] = (Format.ONNX,),
           precisions: Iterable[Precision | str] = (Precision.FP32,),
           calib: Any = None, val: Any = None, max_drop: float = 1.0,
           imgsz: int | None = None, labels: list[str] | None = None, name: str | None = None,
           opset: int = 17, weights: str | Path | None = None,
           scheme: str | None = None, calib_count: int | None = None, threads: int = 2,
           progress: Callable[[str], None] | None = None,
           file_options: FileOptions | None = None, address: str | None = None,
           time_budget: float | None = DEFAULT_TIME_BUDGET, batch: int | str = 1) -> Bundle:
    """Exports a detector into a bundle: every format at every precision, each one measured.

    The fp32 ONNX file is written first and checked against the source (parity); every other
    artifact is converted from it. With ``val``, every artifact is evaluated on that dataset
    against the fp32 ONNX reference (the accuracy gate, see ``gate.py``); one that drops more
    than ``max_drop`` mAP@0.5:0.95 points is retried with fallbacks, and stays in the bundle
    marked ``accuracy["gate"] == "failed"`` if none recovers it.

    Each artifact joins the bundle at ``out`` as soon as it is measured, the manifest
    rewritten atomically each time: an export that fails, is killed or is interrupted later
    leaves a valid bundle of everything finished. Its side files live in one scratch
    directory (the converters' temporary files included), removed on errors, SIGINT and
    SIGTERM.

    Args:
        model: An ``nn.Module``, a ``.pt2``/TorchScript/``.onnx`` path, a
            ``"package.module:factory"`` string (with ``weights``), a shipped detector's name
            (``"sample"``, ``"reference"``: :data:`~edgekit.export.shipped.SHIPPED`), or a
            :class:`LoadedModel`.
        out: The bundle directory; an existing bundle there is replaced only once the new
            one is complete.
        formats: Formats to produce (onnx, openvino, tflite).
        precisions: Precisions to produce for each format (fp32, fp16, int8).
        calib: Calibration images for INT8: a folder of images, a video file, a dataset path
            or a loaded :class:`~edgekit.data.dataset.Dataset`.
        val: A labelled validation dataset (path or Dataset) whose classes match the model's,
            or unlabelled footage (a video file, a folder of plain images, a URI): then the
            gate is label-free, scoring each artifact against the fp32 artifact's own
            detections. Required for fp16/int8, whose accuracy is never handed over
            unmeasured.
        max_drop: Largest mAP@0.5:0.95 drop vs fp32 an artifact may have, in points.
        imgsz: Square input size. Default: the model's own, else 640.
        labels: Class names. Default: the model's own, else ``class0..``.
        name: Bundle name. Default: derived from the source.
        opset: ONNX opset to pin.
        weights: State dict for a ``module:factory`` source (or another checkpoint for a
            shipped detector).
        scheme: ONNX INT8 scheme, "u8s8" (x86) or "s8s8" (TensorRT, Arm). Default: this
            machine's.
        calib_count: Most calibration images to use (default
            :data:`~edgekit.export.calibration.DEFAULT_SAMPLES`).
        threads: Inference threads while measuring the gate's latency.
        progress: Called with one line per step, for a CLI to display.
        file_options: What the user said about the model where it is silent (``--head``,
            mean/std/colour/resize); the head is otherwise recognised from its outputs.
        address: A Ray cluster (``auto``, ``host:port``, ``ray://host:port``; needs
            ``edgekit[scale]``) whose workers share the gate's images, each artifact opened
            exactly as here (the code path of ``edgekit eval --address``); ``val`` must then
            be a labelled dataset path every node can read. None: the gate runs here.
        time_budget: Seconds the whole export may take before the fallback search stops
            starting candidates (the best measured one is kept); None: no limit.
        batch: Images per inference call of every artifact: N (fixed), or "dynamic" (ONNX
            and OpenVINO only; TFLite files have a fixed batch). Recorded per artifact as
            ``details["batch"]``; see ``batch.py`` for how each format gets it.

    Returns:
        The written bundle, loaded back and verified.

    Raises:
        ExportIncomplete: The bundle was written, but an artifact failed to export or failed
            the gate (``.bundle`` and ``.report`` say which).
        ExportInterrupted: SIGTERM arrived (SIGINT raises KeyboardInterrupt); the bundle
            holds what was finished before it.
        EdgekitError: A format or precision is unknown, or int8/fp16 was asked without the
            data it needs.
        DatasetError: The calibration or validation data is unusable (the file is named).
        ModelError: The model cannot be loaded or exported to ONNX at all.
        BundleError: ``out`` cannot be written, or is a non-bundle directory.
    """
    say = progress or _silent
    cells = _cells(_formats(formats), _precisions(precisions))
    batch = _batch(batch, cells)
    _check_inputs(cells, calib, val)
    _check_address(address, val)
    _check_destination(Path(out))
    loaded = load_model(model, weights=weights, imgsz=imgsz)
    say(f"loaded {loaded.description}")
    if loaded.head and not (file_options and file_options.head):
        # The source states its convention (an Ultralytics checkpoint's head): no guessing.
        file_options = replace(file_options or FileOptions(), head=loaded.head,
                               head_from=f"stated by the source, {loaded.description}")
    size = _imgsz(loaded, imgsz)
    labels = labels or loaded.labels
    data = val if address is not None else None  # the path the gate's Ray workers open
    val = _validation(val, labels)
    from .scratch import interruptible, scratch

    with interruptible(), scratch() as work:
        say(f"exporting onnx fp32 at {size[0]}x{size[1]} (opset {opset})"
            + (f", batch {batch}" if batch != 1 else ""))
        from .onnx import export_onnx

        onnx_file = export_onnx(loaded, work / "model.onnx", imgsz=size, opset=opset,
                                labels=labels, file_options=file_options, batch=batch)
        base = _base(loaded, onnx_file, work, labels=labels, say=say,
                     file_options=file_options)
        from .matrix import Matrix

        matrix = Matrix(loaded=loaded, base=base, work=work, cells=cells, say=say,
                        max_drop=max_drop, scheme=scheme, threads=threads, address=address,
                        data=data, time_budget=time_budget, batch=batch)
        matrix.prepare(calib=calib, val=val, calib_count=calib_count)
        report = _write_bundle(loaded, out, base, matrix, name=name, say=say)
    bundle = Bundle.load(out)
    failed = [c for c in report["cells"] if c["status"] != "ok"]
    if failed:
        raise ExportIncomplete(
            f"{len(failed)} of {len(report['cells'])} artifacts did not pass: "
            + "; ".join(f"{c['key']} {c['status']}" + (f" ({c['error']})" if c.get("error")
                                                          else "") for c in failed),
            hint=f"The bundle at {out} keeps every artifact that succeeded, each marked "
                 f"(see {REPORT}). Use a passing precision, more/better calibration "
                 "images, or a larger --max-drop if that loss is acceptable.",
            bundle=bundle, report=report)
    return bundle


def _batch(value: int | str, cells: list[tuple[Format, Precision]]) -> int | str:
    """The parsed --batch; refuses, before any work, a dynamic batch for TFLite."""
    from .batch import DYNAMIC, parse_batch

    batch = parse_batch(value)
    if batch == DYNAMIC and any(f is Format.TFLITE for f, _ in cells):
        raise EdgekitError(
            "TFLite files have a fixed batch: --batch dynamic cannot make one.",
            hint="Pass --batch N (a fixed number of images per call), or leave tflite out of "
                 "--to for a dynamic batch. (litert-torch converts a dynamic batch only with "
                 "NCHW input, and XNNPACK then cannot resize it: see export/batch.py.)")
    return batch


def _silent(_line: str) -> None:
    """The default progress sink: library callers get warnings instead of lines."""


def _formats(formats: Iterable[Format | str]) -> list[Format]:
    wanted = _unique(Format.parse(f) for f in ([formats] if isinstance(formats, str)
                                                else formats))
    missing = [f.value for f in wanted if f.value not in EXPORTERS]
    if missing:
        raise EdgekitError(
            f"Exporting to {', '.join(missing)} is not available yet.",
            hint=f"Available now: {', '.join(EXPORTERS.names())}.",
        )
    return wanted


def _precisions(precisions: Iterable[Precision | str]) -> list[Precision]:
    return _unique(Precision.parse(p) for p in ([precisions] if isinstance(precisions, str)
                                                 else precisions))


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _cells(formats: list[Format], precisions: list[Precision]) -> list[tuple[Format, Precision]]:
    """format x precision, with the fp32 ONNX reference first: every other artifact is
    converted from it and measured against it."""
    cells = [(f, p) for f in formats for p in precisions]
    return [_REFERENCE] + [c for c in cells if c != _REFERENCE]


def _check_inputs(cells: list[tuple[Format, Precision]], calib: Any, val: Any) -> None:
    """Fails before any minutes of work when the data a precision needs is missing."""
    if calib is None and any(p is Precision.INT8 for _, p in cells):
        raise EdgekitError("INT8 export needs calibration images (calib=... / --calib).",
                           hint="Pass a folder of images, a video or a dataset that looks "
                                "like what the model will see (a few hundred images).")
    if val is None and any(p is not Precision.FP32 for _, p in cells):
        raise EdgekitError(
            "fp16/int8 artifacts need a validation dataset (val=... / --val): their accuracy "
            "is measured against fp32 before they are handed over.",
            hint="Pass a labelled COCO or YOLO dataset with the model's classes, or unlabelled "
                 "footage (a video, a folder of images, a URI) for the label-free gate "
                 "against fp32.")


def _check_address(address: str | None, val: Any) -> None:
    """A sharded gate needs a labelled dataset path the workers can open, and Ray (checked
    here, before minutes of export work; Ray is imported only when an address is given)."""
    if address is None:
        return
    from .labelfree import is_unlabelled

    if not isinstance(val, str | Path) or is_unlabelled(val):
        raise EdgekitError(
            "--address shards the accuracy gate's labelled validation set over Ray workers, "
            "so it needs --val as a labelled COCO/YOLO dataset path.",
            hint="Pass --val DATASET (readable at the same path on every node), or drop "
                 "--address to run the gate here.")
    from edgekit.batch.cluster import ray_module

    ray_module()


def _check_destination(out: Path) -> None:
    """Fails before minutes of export work when the bundle could not be written anyway."""
    if out.exists() and not (out / MANIFEST).is_file() and (
            not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists and is not an edgekit bundle; not overwriting it.",
                          hint="Choose another output directory, or empty this one.")


def _imgsz(loaded: LoadedModel, imgsz: int | None) -> tuple[int, int]:
    if imgsz is not None:
        return (int(imgsz), int(imgsz))
    return loaded.imgsz or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)


def _validation(val: Any, labels: list[str] | None) -> Any:
    """Loads the validation set and, when the labels are known already, checks them before
    any minutes of export work (otherwise the matrix checks them after the ONNX export)."""
    if val is None:
        return None
    from .labelfree import Unlabelled, is_unlabelled

    if is_unlabelled(val):
        # A labelled set wins when given; footage alone gets the label-free gate.
        return val if isinstance(val, Unlabelled) else Unlabelled(source=str(val))
    from edgekit.data.dataset import Dataset, check_labels, load_dataset

    dataset = val if isinstance(val, Dataset) else load_dataset(val)
    if labels:
        check_labels(dataset.labels, labels, source=dataset.root)
    return dataset


def _base(loaded: LoadedModel, onnx_file: Path, work: Path, *, labels: list[str] | None,
          say: Callable[[str], None], file_options: FileOptions | None = None
          ) -> dict[str, Any]:
    """Describes and parity-checks the fp32 ONNX: the reference every artifact derives from."""
    from .onnx import describe_onnx, recognise
    from .parity import GOLDEN_FILE, SEEDS, check_parity

    info = describe_onnx(onnx_file)
    read = recognise(onnx_file, labels, loaded.source, file_options)
    say(f"head: {read.output.kind} ({read.output.reason}); preprocessing: {read.input.origin}")
    if not labels:
        labels = read.labels
        if labels[0] == "class0":
            _needs_labels(read, loaded.source)
            _say_placeholder(labels, loaded.source, say)
    # The spec describes one image's tensor (what preprocess makes); a batch dimension the
    # file leaves free (export --batch) is the artifacts' fact, in their details.
    shape = info["input_shape"]
    spec = replace(read.input, name=info["input_name"], shape=(1, *shape[1:]))
    say(f"checking parity on {len(SEEDS)} synthetic scenes")
    parity = check_parity(loaded, onnx_file, spec, golden=work / GOLDEN_FILE,
                          head=read.output.kind)
    say(f"parity: max |diff| {parity['max_abs_diff']:.3g} vs {parity['reference']}")
    if parity["max_abs_diff"] > parity["tolerance"]:
        raise ModelError(
            f"The ONNX export of {loaded.source} differs from {parity['reference']} by "
            f"{parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:.3g}); no bundle "
            "was written.",
            hint="Check the model has no train-mode layers or data-dependent control flow, "
                 "or try another opset.",
        )
    return {"onnx": onnx_file, "info": info, "labels": list(labels), "spec": spec,
            "output": replace(read.output, name=info["output_name"]),
            "parity": parity, "golden": work / GOLDEN_FILE}


def _tools() -> tuple[str, ...]:
    """The packages whose versions go into provenance: the base, then each exporter's."""
    declared = (tool for _, exporter in EXPORTERS.entries() for tool in exporter.tools)
    return tuple(dict.fromkeys((*_BASE_TOOLS, *declared)))


def _write_bundle(loaded: LoadedModel, out: str | Path, base: dict[str, Any], matrix: Any, *,
                  name: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Runs the matrix, each artifact published into the bundle at ``out`` as it is done."""
    from .matrix import Publisher

    manifest = Manifest(
        name=name or _default_name(loaded), labels=base["labels"], input=base["spec"],
        output=base["output"],
    )
    publisher = Publisher(Path(out), replace(manifest, provenance=Provenance(
        source=loaded.source, source_sha256=loaded.source_sha256, created=utc_now(),
        tools=tool_versions(*_tools()), parity=base["parity"],
        calibration_sha256=matrix.calibration.sha256 if matrix.calibration else None,
    )), extras=[base["golden"]])  # golden.npz: no artifact, its sha256 in provenance.parity
    matrix.run(publisher, manifest)
    report = matrix.report()
    publisher.write_report(report)
    say(f"wrote {out}")
    return report


def _needs_labels(read: Any, source: str) -> None:
    """Refuses a head whose outputs do not say how many classes there are, without names:
    the gate scores per class, and made-up names would hide a wrong count."""
    from edgekit.heads import HEADS

    if not HEADS.load(read.output.kind).knows_classes:
        raise ModelError(
            f"{source}: its '{read.output.kind}' outputs give class ids but not how many "
            "classes there are.",
            hint="Name them: labels=[...] / --labels a,b,c (in the model's class order).")


def _say_placeholder(labels: list[str], source: str, say: Callable[[str], None]) -> None:
    message = (f"{source}: no labels given; using class0..class{len(labels) - 1} from the "
               "output shape. Pass labels=[...] to name them.")
    if say is _silent:
        warnings.warn(message, UserWarning, stacklevel=4)
    else:
        say(message)


def _default_name(loaded: LoadedModel) -> str:
    if loaded.kind in ("pt2", "torchscript", "onnx"):
        return Path(loaded.source).stem
    if loaded.kind == "factory":
        return loaded.source.split(" + ")[0].rsplit(":", 1)[-1]
    return loaded.kind if loaded.kind in SHIPPED else loaded.source.lower()


