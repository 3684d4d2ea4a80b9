"""Host side: a PyTorch or ONNX detector in, a verified edgekit bundle out.

``import edgekit.export`` stays light (no torch, onnx, onnxruntime or OpenCV): the CLI imports
it for ``--help``. Heavy modules load inside the functions that use them.

Example:
    from edgekit.export import export
    bundle = export("sample", "out/sample")
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit.bundle import (
    MANIFEST,
    Bundle,
    BundleWriter,
    Format,
    InputSpec,
    Manifest,
    OutputSpec,
    Precision,
    Provenance,
    utc_now,
)
from edgekit.errors import BundleError, EdgekitError, ModelError
from edgekit.registry import Registry

from .loaders import SAMPLE, LoadedModel, load_model

__all__ = ["export", "load_model", "LoadedModel", "EXPORTERS", "SAMPLE", "DEFAULT_IMGSZ",
           "export_onnx", "describe_onnx", "check_parity"]

DEFAULT_IMGSZ = 640  # the size YOLOv8/YOLO11 detectors are trained at

# One entry per format: "module:function" with export_onnx's signature, loaded on first use.
# OpenVINO and TFLite (and precisions) come in a later issue as entries here.
EXPORTERS: Registry[Callable[..., Path]] = Registry(
    "exporter", {Format.ONNX.value: "edgekit.export.onnx:export_onnx"})

# Public names that live in heavy modules: imported on first access.
_LAZY = {"export_onnx": "onnx", "describe_onnx": "onnx", "check_parity": "parity"}
_TOOLS = ("torch", "onnx", "onnxruntime", "onnxslim", "edgekit")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'edgekit.export' has no attribute '{name}'")


def export(model: Any, out: str | Path, *, formats: Iterable[Format | str] = (Format.ONNX,),
           imgsz: int | None = None, labels: list[str] | None = None, name: str | None = None,
           opset: int = 17, weights: str | Path | None = None,
           progress: Callable[[str], None] | None = None) -> Bundle:
    """Exports a detector into a bundle directory, written atomically.

    Args:
        model: An ``nn.Module``, a ``.pt2``/TorchScript/``.onnx`` path, a
            ``"package.module:factory"`` string (with ``weights``), ``"sample"``, or a
            :class:`LoadedModel`.
        out: The bundle directory; an existing bundle there is replaced only once the new
            one is complete.
        formats: Formats to produce. Only ONNX is available for now.
        imgsz: Square input size. Default: the model's own (the sample's config, a static
            ONNX or .pt2 input), else 640.
        labels: Class names. Default: the model's own (sample config, ONNX metadata), else
            ``class0..classK-1`` from the output shape (with a warning).
        name: Bundle name. Default: derived from the source.
        opset: ONNX opset to pin.
        weights: State dict for a ``module:factory`` source (or custom sample weights).
        progress: Called with one line per step, for a CLI to display.

    Returns:
        The written bundle, loaded back and verified.

    Raises:
        EdgekitError: A requested format is not available.
        ModelError: The model cannot be loaded, exported, or is not a detection head.
        BundleError: ``out`` cannot be written, or is a non-bundle directory.
    """
    say = progress or _silent
    wanted = _formats(formats)
    _check_destination(Path(out))
    loaded = load_model(model, weights=weights, imgsz=imgsz)
    say(f"loaded {loaded.description}")
    size = _imgsz(loaded, imgsz)
    labels = labels or loaded.labels
    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as tmp:
        work = Path(tmp)
        files = {}
        for fmt in wanted:
            say(f"exporting {fmt.value} at {size[0]}x{size[1]} (opset {opset})")
            files[fmt] = EXPORTERS.load(fmt.value)(loaded, work / f"model.{fmt.value}",
                                                   imgsz=size, opset=opset, labels=labels)
        return _write_bundle(loaded, out, files[Format.ONNX], work, labels=labels, name=name,
                             say=say)


def _silent(_line: str) -> None:
    """The default progress sink: library callers get warnings instead of lines."""


def _formats(formats: Iterable[Format | str]) -> list[Format]:
    wanted = [Format.parse(f) for f in ([formats] if isinstance(formats, str) else formats)]
    missing = [f.value for f in wanted if f.value not in EXPORTERS]
    if missing:
        raise EdgekitError(
            f"Exporting to {', '.join(missing)} is not available yet.",
            hint=f"Available now: {', '.join(EXPORTERS.names())}.",
        )
    if Format.ONNX not in wanted:
        # Every other format is converted from (and checked against) the ONNX file.
        wanted.insert(0, Format.ONNX)
    return wanted


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


def _write_bundle(loaded: LoadedModel, out: str | Path, onnx_file: Path, work: Path, *,
                  labels: list[str] | None, name: str | None,
                  say: Callable[[str], None]) -> Bundle:
    from .onnx import describe_onnx
    from .parity import GOLDEN_FILE, SEEDS, check_parity

    info = describe_onnx(onnx_file)
    labels = labels or _placeholder_labels(info["output_shape"], loaded.source, say)
    spec = InputSpec(name=info["input_name"], shape=tuple(info["input_shape"]))
    say(f"checking parity on {len(SEEDS)} synthetic scenes")
    parity = check_parity(loaded, onnx_file, spec, golden=work / GOLDEN_FILE)
    say(f"parity: max |diff| {parity['max_abs_diff']:.3g} vs {parity['reference']}")
    if parity["max_abs_diff"] > parity["tolerance"]:
        raise ModelError(
            f"The ONNX export of {loaded.source} differs from {parity['reference']} by "
            f"{parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:.3g}); no bundle "
            "was written.",
            hint="Check the model has no train-mode layers or data-dependent control flow, "
                 "or try another opset.",
        )
    manifest = Manifest(
        name=name or _default_name(loaded), labels=list(labels), input=spec,
        output=OutputSpec(name=info["output_name"]),
    )
    with BundleWriter(out, manifest) as writer:
        writer.add_file(onnx_file, format=Format.ONNX, precision=Precision.FP32,
                        name="model.onnx", opset=info["opset"], simplified=info["simplified"],
                        output_shape=info["output_shape"])
        # Not an artifact (no runtime loads it): its sha256 sits in provenance.parity.
        shutil.copyfile(work / GOLDEN_FILE, writer.staging / GOLDEN_FILE)
        writer.update(provenance=Provenance(
            source=loaded.source, source_sha256=loaded.source_sha256, created=utc_now(),
            tools=_tool_versions(), parity=parity,
        ))
    say(f"wrote {out}")
    return Bundle.load(out)


def _placeholder_labels(shape: list, source: str, say: Callable[[str], None]) -> list[str]:
    count = int(shape[1]) - 4
    message = (f"{source}: no labels given; using class0..class{count - 1} from the output "
               "shape. Pass labels=[...] to name them.")
    if say is _silent:
        warnings.warn(message, UserWarning, stacklevel=4)
    else:
        say(message)
    return [f"class{i}" for i in range(count)]


def _default_name(loaded: LoadedModel) -> str:
    if loaded.kind in ("pt2", "torchscript", "onnx"):
        return Path(loaded.source).stem
    if loaded.kind == "factory":
        return loaded.source.split(" + ")[0].rsplit(":", 1)[-1]
    return loaded.kind if loaded.kind == SAMPLE else loaded.source.lower()


def _tool_versions() -> dict[str, str]:
    versions = {}
    for tool in _TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            continue  # an ONNX-only export runs without torch: record what exists
    return versions
