"""One loader for plain model files: every command opens ``.onnx``/``.tflite``/``.xml`` here.

``wrap_model`` is the one place a model file becomes an in-memory bundle: the backend reports
the tensors and the file's metadata (``Backend.metadata()``), the head registry recognises
the output convention, and preprocessing comes from metadata, the head's reference
implementation or the user's flags, in that order, each fact saying where it came from. A
dynamic image dimension is filled only from metadata or ``--shape``, never guessed.
"""

from __future__ import annotations

import ast
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .backends import format_of, format_suffixes
from .bundle import (
    Artifact,
    Bundle,
    ColorOrder,
    Format,
    InputSpec,
    Layout,
    Manifest,
    OutputSpec,
    Precision,
    sha256_file,
)
from .errors import ModelError

# Files users bring that edgekit does not run directly, and what to do with each.
_CONVERT_FIRST = {
    ".pb": "a TensorFlow frozen graph: convert it first, e.g. `python -m tf2onnx.convert "
    "--graphdef MODEL.pb --inputs IN:0 --outputs OUT:0 --output model.onnx` (pip install "
    "tf2onnx), then give the .onnx",
    ".pt": "a PyTorch file edgekit does not run directly: export it first (`edgekit export "
    "MODEL.pt -o BUNDLE` for TorchScript, `edgekit export package.module:factory --weights "
    "MODEL.pt -o BUNDLE` for a state dict), then give the bundle",
    ".pth": "a PyTorch state dict: export it with `edgekit export package.module:factory "
    "--weights MODEL.pth -o BUNDLE` first",
    ".engine": "a TensorRT engine (tied to one GPU and TensorRT version): give the .onnx it "
    "was built from",
}


@dataclass(frozen=True, kw_only=True)
class FileOptions:
    """What the user says about a plain model file where the file itself is silent.

    Attributes:
        head: Output convention name (``--head``); None recognises it.
        shape: Image input size (height, width) for dynamic inputs (``--shape``).
        mean: Per-channel mean subtracted from 0..255 pixels (``--mean``).
        std: Per-channel divisor after the mean (``--std``).
        color: "rgb" or "bgr" (``--color``).
        resize: "letterbox" or "stretch" (``--resize``).
        labels: Class names (``--labels``).
        head_from: Where ``head`` came from when the source model stated it (an Ultralytics
            checkpoint's head class) rather than the user's ``--head``.
    """

    head: str | None = None
    shape: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color: str | None = None
    resize: str | None = None
    labels: tuple[str, ...] | None = None
    head_from: str | None = None

    def flags(self) -> list[str]:
        """The preprocessing flags the user set, for the manifest's origin note."""
        names = ("mean", "std", "color", "resize", "shape")
        return [f"--{n}" for n in names if getattr(self, n) is not None]


def check_model_path(path: Path) -> Format:
    """The format of a model file, or an error saying what the file is and what to do."""
    if path.is_dir() and (path / "saved_model.pb").is_file():
        raise ModelError(
            f"{path} is a TensorFlow SavedModel; edgekit runs .onnx, .tflite and OpenVINO .xml.",
            hint="Convert it first: `python -m tf2onnx.convert --saved-model "
            f"{path} --output model.onnx` (pip install tf2onnx), or to .tflite with "
            "tf.lite.TFLiteConverter.from_saved_model.",
        )
    if not path.exists():
        raise ModelError(
            f"{path}: no such model or bundle.",
            hint="Give a bundle directory, a .onnx/.tflite/.xml file, or the word 'sample'.",
        )
    fmt = format_of(path)
    if fmt is not None:
        return fmt
    known = [s for suffixes in format_suffixes().values() for s in suffixes]
    what = _CONVERT_FIRST.get(path.suffix.lower())
    raise ModelError(
        f"{path} is {what}." if what else
        f"{path}: not a bundle directory or a {', '.join(known[:-1])} or {known[-1]} file.",
        hint=None if what else "Export it first: `edgekit export MODEL -o BUNDLE`.",
    )


def cache_root() -> Path:
    """Where edgekit keeps files it can rebuild (TensorRT engines, OpenVINO blobs, ONNX
    files of checkpoints): ``$XDG_CACHE_HOME/edgekit``, else ``~/.cache/edgekit``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit"


def is_ultralytics_checkpoint(path: str | Path) -> bool:
    """Whether a file is a ``torch.save`` archive that pickles Ultralytics classes (its
    pickle is read as bytes, never unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            return bool(pickles) and b"ultralytics." in archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, KeyError):
        return False


def open_model_file(path: str | Path, *, options: FileOptions | None = None) -> Bundle:
    """Opens a plain model file as an in-memory bundle (see ``wrap_model``).

    An Ultralytics checkpoint (``best.pt``) is read by the user's own ``ultralytics`` and
    converted once to an fp32 ONNX file in the cache (``edgekit.export``, parity-checked
    against the checkpoint); that file is then opened as any other.
    """
    from .backends import load_backend

    path = Path(path)
    options = options or FileOptions()
    if path.is_file() and path.suffix.lower() == ".pt" and is_ultralytics_checkpoint(path):
        from .export.ultralytics_ckpt import checkpoint_onnx  # torch: only for checkpoints

        onnx_file, options = checkpoint_onnx(path, options=options)
        bundle = wrap_model(onnx_file, Format.ONNX, load_backend(onnx_file, Format.ONNX),
                            options=options)
        return Bundle(bundle.path, replace(bundle.manifest, name=path.stem))
    fmt = check_model_path(path)
    return wrap_model(path, fmt, load_backend(path, fmt), options=options)


def parse_metadata(raw: dict[str, str]) -> dict[str, Any]:
    """Metadata values as Python values where they are literals (Ultralytics writes
    ``names`` as a dict repr, ``imgsz`` as a list, flags as True/False)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = ast.literal_eval(value) if isinstance(value, str) else value
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = value
    return out


def metadata_labels(metadata: dict[str, Any]) -> list[str] | None:
    names = metadata.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return None


def image_input(inputs) -> tuple[int, Any]:
    """Index and info of the image input: the 4-D one (RT-DETR has a second, sizes input)."""
    images = [(i, t) for i, t in enumerate(inputs) if len(t.shape) == 4]
    if len(images) != 1:
        shown = ", ".join(f"'{t.name}' {list(t.shape)}" for t in inputs)
        raise ModelError(
            f"The model's inputs ({shown}) hold no single 4-D image input.",
            hint="A detector takes one [1, 3, H, W] or [1, H, W, 3] image.",
        )
    return images[0]


def input_size(
    info, metadata: dict[str, Any], options: FileOptions
) -> tuple[Layout, int, int, str]:
    """(layout, height, width, where the size came from) of the image input."""
    shape = info.shape
    if shape[-1] in (1, 3) and shape[1] not in (1, 3):
        layout, hw = Layout.NHWC, (shape[1], shape[2])
    else:
        layout, hw = Layout.NCHW, (shape[2], shape[3])
    if all(isinstance(d, int) and d > 0 for d in hw):
        if options.shape is not None and tuple(options.shape) != tuple(hw):
            raise ModelError(
                f"--shape {options.shape[0]}x{options.shape[1]} does not fit the input "
                f"'{info.name}' {list(shape)}, whose size is fixed.",
                hint="Drop --shape: it is for inputs with dynamic dimensions.",
            )
        return layout, int(hw[0]), int(hw[1]), "model"
    if options.shape is not None:
        return layout, int(options.shape[0]), int(options.shape[1]), "--shape"
    imgsz = metadata.get("imgsz")
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2:
        return layout, int(imgsz[0]), int(imgsz[1]), "metadata imgsz"
    raise ModelError(
        f"The input '{info.name}' has dynamic dimensions {list(shape)} and the file does not "
        "say its size.",
        hint="Give it: --shape HEIGHTxWIDTH (e.g. --shape 640x640).",
    )


def wrap_model(path: Path, fmt: Format, backend: Any, *, options: FileOptions) -> Bundle:
    """The one function that turns a loaded model file into an in-memory bundle.

    Args:
        path: The model file.
        fmt: Its format.
        backend: The loaded backend (tensors and ``metadata()`` are read from it).
        options: What the user said where the file is silent.

    Raises:
        ModelError: the head cannot be recognised, a dynamic size is not given, or a
            flag contradicts the file.
    """
    from .heads import HEADS, ModelFacts, check_class_count, make_head, recognise

    metadata = parse_metadata(backend.metadata())
    _, info = image_input(backend.inputs)
    layout, height, width, size_from = input_size(info, metadata, options)
    named = metadata_labels(metadata)
    labels = list(options.labels) if options.labels else named
    # Only the file's own class names narrow recognition: labels the user typed are checked
    # against the chosen head instead, so a wrong count is reported as such.
    facts = ModelFacts(inputs=backend.inputs, outputs=backend.outputs, metadata=metadata,
                       height=height, width=width,
                       num_classes=len(named) if named else None)
    choice = recognise(facts, name=options.head,
                       named_by=options.head_from or "named with --head")
    head_cls = HEADS.load(choice.name)
    channels = info.shape[1] if layout is Layout.NCHW else info.shape[3]
    shape = ((1, channels, height, width) if layout is Layout.NCHW
             else (1, height, width, channels))
    spec, origin = preprocessing(head_cls, facts, metadata, options)
    dtype = "uint8" if str(info.dtype) == "uint8" else "float32"
    batch = "" if isinstance(info.shape[0], int) else "; dynamic batch run at 1"
    spec = replace(spec, name=info.name, shape=shape, layout=layout, dtype=dtype,
                   origin=f"{origin}; size from {size_from}{batch}")
    output = OutputSpec(**{**{"kind": choice.name, "name": backend.outputs[0].name,
                              "reason": choice.reason}, **head_cls.defaults})
    head = make_head(choice.name, output, spec, backend.outputs)  # binds: refuses a misfit
    output = replace(output, keypoints=head.num_keypoints)
    if labels:
        check_class_count(head, labels)
    labels = labels or head_cls.labels_for(facts) or [
        f"class{i}" for i in range(head.num_classes or 1)]
    artifact = Artifact(format=fmt, precision=Precision.FP32, file=path.name,
                        sha256=sha256_file(path), size=path.stat().st_size,
                        details={"layout": str(layout)} if layout is Layout.NHWC else {})
    manifest = Manifest(name=path.stem, labels=labels, input=spec, output=output,
                        artifacts=[artifact])
    return Bundle(path.parent, manifest)


def preprocessing(head_cls, facts, metadata: dict[str, Any],
                  options: FileOptions) -> tuple[InputSpec, str]:
    """The input spec's pixel facts and a note of where they came from."""
    if metadata.get("stride") is not None and metadata_labels(metadata):
        # Ultralytics: RGB, 0..1, letterboxed with grey 114 (edgekit's own defaults).
        fields, origin = {}, "Ultralytics metadata (RGB, /255, letterbox)"
    else:
        fields = dict(head_cls.preprocessing_for(facts))
        origin = (f"the '{head_cls.name}' head's reference preprocessing" if fields
                  else "edgekit defaults (RGB, /255, letterbox)")
    if options.mean is not None:
        fields["mean"] = tuple(options.mean)
    if options.std is not None:
        fields["std"] = tuple(options.std)
    if options.color is not None:
        fields["color"] = ColorOrder.parse(options.color)
    if options.resize is not None:
        fields["letterbox"] = options.resize == "letterbox"
    if options.flags():
        origin += "; flags " + " ".join(options.flags())
    if "color" in fields:
        fields["color"] = ColorOrder.parse(fields["color"])
    return replace(InputSpec(), **fields), origin
