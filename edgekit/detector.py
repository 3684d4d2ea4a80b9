"""A detector: one artifact on one backend, with the manifest's pre/post-processing around it."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .backends import BackendOptions, load_backend
from .bundle import MANIFEST, Artifact, Bundle, Format, InputSpec, Manifest, OutputSpec
from .errors import ModelError
from .postprocess import check_yolo_output, postprocess
from .preprocess import preprocess
from .types import Detections

SAMPLE_BUNDLE = Path(__file__).parent / "sample" / "bundle"


@dataclass(slots=True)
class StageTimes:
    """Milliseconds spent in each stage of the last call."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0


class Detector:
    """Runs one bundle artifact on images.

    Example:
        detector = Detector.open("sample")
        detections = detector(cv2.imread("street.jpg"))
    """

    def __init__(
        self,
        bundle: Bundle,
        artifact: Artifact,
        *,
        options: BackendOptions | None = None,
        backend: str | None = None,
    ) -> None:
        self.bundle = bundle
        self.artifact = artifact
        self.manifest: Manifest = bundle.manifest
        self.backend = load_backend(
            bundle.file(artifact),
            artifact.format,
            name=backend,
            options=with_layouts(options, self.manifest, artifact),
        )
        self.times = StageTimes()
        out = self.backend.outputs[0]
        if out.shape and all(isinstance(d, int) for d in out.shape):
            check_yolo_output(out.shape, len(self.labels))

    @classmethod
    def open(
        cls,
        model: str | Path,
        *,
        format: str | None = None,
        precision: str | None = None,
        options: BackendOptions | None = None,
        backend: str | None = None,
    ) -> Detector:
        """Opens ``sample``, a bundle directory, or a plain YOLOv8/11-style ``.onnx`` file."""
        bundle = open_bundle(model)
        artifact = bundle.select(format=format, precision=precision)
        return cls(bundle, artifact, options=options, backend=backend)

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    def __call__(
        self, image: np.ndarray, *, conf: float | None = None, iou: float | None = None
    ) -> Detections:
        """Detects objects in one BGR image; boxes are in the image's pixels."""
        t0 = time.perf_counter()
        tensor, box = preprocess(image, self.manifest.input)
        t1 = time.perf_counter()
        output = self.backend.run([tensor])[0]
        t2 = time.perf_counter()
        detections = postprocess(
            output, self.manifest.output, box, image.shape[1], image.shape[0], conf=conf, iou=iou
        )
        t3 = time.perf_counter()
        self.times = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return detections


def with_layouts(
    options: BackendOptions | None, manifest: Manifest, artifact: Artifact
) -> BackendOptions:
    """Adds the layout facts of the bundle to the caller's backend options.

    The Detector feeds tensors in the manifest's layout; a file may take another one (TFLite
    exports are NHWC). Backends that can transpose (LiteRT) read both; the others ignore them.
    Options the caller set explicitly win.
    """
    options = options or BackendOptions()
    facts = {"layout": str(manifest.input.layout)}
    if artifact.details.get("layout"):
        facts["model_layout"] = str(artifact.details["layout"])
    return replace(options, extra={**facts, **options.extra})


def open_bundle(model: str | Path) -> Bundle:
    """Resolves a MODEL argument to a verified bundle.

    ``sample`` is the shipped sample bundle; a directory must hold an ``edgekit.json``; an
    ``.onnx`` file becomes an in-memory bundle whose input spec is read from the model itself.
    """
    if str(model) == "sample":
        if not (SAMPLE_BUNDLE / MANIFEST).is_file():
            raise ModelError(
                "The sample bundle is not in this installation.",
                hint="Run `make sample-bundle` in a source checkout to rebuild it.",
            )
        return Bundle.load(SAMPLE_BUNDLE)
    path = Path(model)
    if path.is_dir():
        return Bundle.load(path)
    if path.suffix.lower() == ".onnx" and path.is_file():
        return _bundle_from_onnx(path)
    if not path.exists():
        raise ModelError(
            f"{path}: no such model or bundle.",
            hint="Give a bundle directory, a .onnx file, or the word 'sample'.",
        )
    raise ModelError(
        f"{path}: not a bundle directory or a .onnx file.",
        hint="Export it first: `edgekit export MODEL -o BUNDLE`.",
    )


def _bundle_from_onnx(path: Path) -> Bundle:
    """Wraps a plain YOLOv8/11-style ONNX export; labels from Ultralytics' metadata if present."""
    from .bundle import Precision, sha256_file

    backend = load_backend(path, Format.ONNX)
    inp = backend.inputs[0]
    if len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[2:]):
        raise ModelError(
            f"{path}: input '{inp.name}' has shape {list(inp.shape)}; a detector takes a static "
            "[1, 3, H, W] image.",
            hint="Export the model with a fixed image size (e.g. imgsz=640).",
        )
    labels = _onnx_labels(backend) or [
        f"class{i}" for i in range(_num_classes(backend.outputs[0].shape))
    ]
    shape = (1, 3, int(inp.shape[2]), int(inp.shape[3]))
    manifest = Manifest(
        name=path.stem,
        labels=labels,
        input=replace(InputSpec(), name=inp.name, shape=shape),
        output=replace(OutputSpec(), name=backend.outputs[0].name),
        artifacts=[
            Artifact(
                format=Format.ONNX,
                precision=Precision.FP32,
                file=path.name,
                sha256=sha256_file(path),
                size=path.stat().st_size,
            )
        ],
    )
    return Bundle(path.parent, manifest)


def _onnx_labels(backend) -> list[str] | None:
    import ast

    meta = backend.session.get_modelmeta().custom_metadata_map
    if "names" not in meta:
        return None
    try:
        names = ast.literal_eval(meta["names"])
    except (ValueError, SyntaxError):
        return None
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def _num_classes(shape: tuple) -> int:
    if len(shape) != 3 or not isinstance(shape[1], int) or shape[1] <= 4:
        raise ModelError(
            f"Output shape {list(shape)} is not a YOLOv8/11 detection head [1, 4+classes, N]."
        )
    return shape[1] - 4
