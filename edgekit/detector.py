"""A detector: one artifact on one backend, with the manifest's pre/post-processing around it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .backends import BackendOptions, load_backend
from .bundle import MANIFEST, Artifact, Bundle, Manifest
from .errors import ModelError
from .model_check import check_model
from .postprocess import postprocess
from .preprocess import preprocess
from .types import Detections

if TYPE_CHECKING:
    from .heads import Head
    from .modelfile import FileOptions

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
        check_model(self.manifest, artifact, self.backend)
        self.times = StageTimes()
        self.head = make_head_checked(self.manifest, self.backend)
        # image tensor -> the model's full input list (RT-DETR also takes target sizes)
        self.feed = input_feed(self.manifest, self.backend, self.head)

    @classmethod
    def open(
        cls,
        model: str | Path,
        *,
        format: str | None = None,
        precision: str | None = None,
        options: BackendOptions | None = None,
        backend: str | None = None,
        file_options: FileOptions | None = None,
    ) -> Detector:
        """Opens ``sample``, a bundle directory, or a plain ``.onnx``/``.tflite``/``.xml`` file
        (its head recognised, see ``edgekit.modelfile``)."""
        bundle = open_bundle(model, file_options=file_options)
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
        outputs = self.backend.run(self.feed(tensor))
        t2 = time.perf_counter()
        detections = postprocess(
            outputs, self.manifest.output, box, image.shape[1], image.shape[0], conf=conf,
            iou=iou, head=self.head,
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


def make_head_checked(manifest: Manifest, backend) -> Head:
    """The manifest's head bound on the backend's outputs, its class count checked against
    the labels (a misread class count is how garbage passed as detections)."""
    from .heads import check_class_count, make_head

    head = make_head(manifest.output.kind, manifest.output, manifest.input, backend.outputs)
    check_class_count(head, manifest.labels)
    return head


def input_feed(manifest: Manifest, backend, head: Head) -> Callable[[np.ndarray], list]:
    """A function image tensor -> the backend's full input list, in the model's order.

    The image goes to the manifest's input (by name, else the only 4-D input); a head's
    extra inputs (RT-DETR's target sizes) go by name, else to the one remaining input.
    """
    infos = backend.inputs
    if len(infos) == 1:
        return lambda tensor: [tensor]
    names = [i.name for i in infos]
    image = names.index(manifest.input.name) if manifest.input.name in names else next(
        i for i, info in enumerate(infos) if len(info.shape) == 4)
    extras = head.extra_inputs()
    fixed: dict[int, np.ndarray] = {}
    rest = [i for i in range(len(infos)) if i != image]
    for key, value in extras.items():
        slot = names.index(key) if key in names else (rest[0] if len(rest) == 1 else None)
        if slot is None or slot == image:
            continue
        fixed[slot] = value.astype(infos[slot].dtype)
    missing = [names[i] for i in rest if i not in fixed]
    if missing:
        raise ModelError(
            f"The model takes inputs besides the image that its head '{head.name}' does not "
            f"fill: {', '.join(missing)}.",
            hint="Name the model's convention with --head, or export it with one image input.",
        )

    def feed(tensor: np.ndarray) -> list[np.ndarray]:
        out = [None] * len(infos)
        out[image] = tensor
        for slot, value in fixed.items():
            out[slot] = value
        return out

    return feed


def open_bundle(model: str | Path, *, file_options: FileOptions | None = None) -> Bundle:
    """Resolves a MODEL argument to a verified bundle.

    ``sample`` is the shipped sample bundle; a directory must hold an ``edgekit.json``; a
    plain ``.onnx``/``.tflite``/``.xml`` file becomes an in-memory bundle through the one
    model-file loader (``edgekit.modelfile``), which recognises its head.
    """
    from .modelfile import open_model_file

    if str(model) == "sample":
        if not (SAMPLE_BUNDLE / MANIFEST).is_file():
            raise ModelError(
                "The sample bundle is not in this installation.",
                hint="Run `make sample-bundle` in a source checkout to rebuild it.",
            )
        return Bundle.load(SAMPLE_BUNDLE)
    path = Path(model)
    if path.is_dir() and (path / MANIFEST).is_file():
        return Bundle.load(path)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        return Bundle.load(path)  # says it is not a bundle
    return open_model_file(path, options=file_options)
