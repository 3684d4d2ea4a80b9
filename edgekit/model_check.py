"""Checks a manifest against the model file it names, when the model is opened.

A manifest that contradicts its model (another input size, dtype or tensor name) used to open
and then fail on every frame; this refuses it at open, listing every mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bundle import Artifact, Format, Layout, Manifest
from .errors import BundleError

# Formats whose tensor names the runtime keeps as exported. LiteRT renames them
# (serving_default_args_0:0) and edgekit binds its tensors by index, so names are not compared.
_NAMED_FORMATS = frozenset({Format.ONNX})
# Where the manifest's dtype may differ from the file's: LiteRT reports a quantized input as
# float32 and quantizes it itself; OpenVINO converts an input it is given to its element type.
_DTYPE_FORMATS = frozenset({Format.ONNX})


def check_model(manifest: Manifest, artifact: Artifact, backend: Any) -> None:
    """Compares the manifest's input and output facts with what the runtime reports.

    Dynamic dimensions of the model (None or a name) match any size.

    Raises:
        BundleError: one error listing every mismatch.
    """
    problems: list[str] = []
    spec = manifest.input
    model_in = _image_input(backend.inputs, spec.name)
    if model_in is None:
        problems.append("the model has no inputs")
    else:
        if artifact.format in _NAMED_FORMATS and spec.name != model_in.name:
            problems.append(f"input.name is '{spec.name}', the model's image input is "
                            f"'{model_in.name}'")
        expected = _in_model_layout(_batched(spec.shape, artifact), spec.layout,
                                    _model_layout(artifact, spec.layout))
        if len(model_in.shape) != len(expected):
            problems.append(f"input.shape {list(spec.shape)} has {len(expected)} dimensions, "
                            f"the model's input {_shape(model_in.shape)} has "
                            f"{len(model_in.shape)}")
        elif any(isinstance(m, int) and e is not None and m != e
                 for m, e in zip(model_in.shape, expected, strict=True)):
            problems.append(f"input.shape {list(spec.shape)} ({spec.layout}) does not fit the "
                            f"model's input {_shape(model_in.shape)}")
        if artifact.format in _DTYPE_FORMATS and np.dtype(spec.dtype) != model_in.dtype:
            problems.append(f"input.dtype is '{spec.dtype}', the model's input takes "
                            f"'{model_in.dtype}'")
    names = [o.name for o in backend.outputs]
    if not names:
        problems.append("the model has no outputs")
    elif (artifact.format in _NAMED_FORMATS and manifest.output.name
          and manifest.output.name not in names):
        problems.append(f"output.name is '{manifest.output.name}', the model's outputs are "
                        f"{names}")
    if problems:
        raise BundleError(
            f"The manifest does not describe {artifact.file} ({artifact.key}):\n"
            + "\n".join(f"  {p}" for p in problems),
            hint="Re-export the bundle, or correct the manifest's input/output fields to the "
                 "model's (`edgekit info` shows them).",
        )


def _image_input(inputs: list[Any], name: str) -> Any:
    """The input the image goes to, as the Detector feeds it: by name, else the 4-D one."""
    named = [i for i in inputs if i.name == name]
    four_d = [i for i in inputs if len(i.shape) == 4]
    return (named or four_d or inputs or [None])[0]


def _batched(shape: tuple[int, ...], artifact: Artifact) -> tuple[Any, ...]:
    """The manifest's one-image shape at the artifact's batch (``export --batch``): an int,
    or "dynamic" (None here, matching any size)."""
    batch = artifact.details.get("batch")
    if batch is None or not shape:
        return tuple(shape)
    return (batch if isinstance(batch, int) else None, *shape[1:])


def _model_layout(artifact: Artifact, default: Layout) -> Layout:
    recorded = artifact.details.get("layout")
    return Layout.parse(recorded) if recorded else default


def _in_model_layout(shape: tuple[int, ...], manifest: Layout, model: Layout) -> tuple[int, ...]:
    """The manifest's shape written in the model's layout (a TFLite file may be NHWC)."""
    if manifest is model or len(shape) != 4:
        return tuple(shape)
    n, a, b, c = shape
    return (n, b, c, a) if manifest is Layout.NCHW else (n, c, a, b)


def _shape(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join("?" if not isinstance(d, int) else str(d) for d in shape) + "]"
