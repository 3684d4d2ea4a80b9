"""``export --batch``: artifacts whose batch dimension is fixed at N, or dynamic.

Several cameras share one inference call (``edgekit.pipeline``, as DeepStream's nvstreammux
does) when the artifact takes a batch. How a batch gets into each format, and why:

- The fp32 ONNX is traced with a dynamic batch axis, then checked: every image of a batch-2
  run must equal its own batch-1 run (a reshape hard-coded to batch 1 fails here, not on a
  camera). Every exporter, the calibration and the accuracy gate then work on that
  batch-capable graph one image at a time, as without ``--batch``.
- A fixed N is pinned into each finished ONNX and OpenVINO file after the gate: a shape
  annotation on the same graph (the same numbers; OpenVINO's reshape re-infers the shapes).
- TFLite is converted at N directly (``ExportJob.batch``). It has no dynamic batch: measured
  with litert-torch 0.10, a dynamic batch converts only with NCHW input (the NHWC wrapper's
  view lowers through JAX, which needs concrete shapes), and XNNPACK then refuses to resize
  the file ("failed to reshape runtime").

Backends run a fixed-batch file on any number of images (``Backend.run`` pads or chunks), so
predict, eval and the gate read a batch-4 bundle as they read any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError, ModelError

__all__ = ["DYNAMIC", "Batch", "parse_batch", "pin_onnx", "pin_openvino", "check_batched"]

DYNAMIC = "dynamic"
DIM_NAME = "batch"  # the ONNX dim_param of a dynamic batch
Batch = int | str  # N >= 1, or DYNAMIC


def parse_batch(value: Any) -> Batch:
    """``4``, ``"4"`` or ``"dynamic"`` -> 4 or "dynamic".

    Raises:
        EdgekitError: anything else, saying what is accepted.
    """
    text = str(value).strip().lower()
    if text == DYNAMIC:
        return DYNAMIC
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise EdgekitError(f"--batch '{value}' is not a batch size.",
                       hint="Give a whole number N >= 1 (every artifact takes N images per "
                            "call) or 'dynamic' (any number; ONNX and OpenVINO only).")


def pin_onnx(path: Path, batch: int) -> None:
    """Fixes the first dimension of an ONNX file's inputs and outputs at ``batch``, in place."""
    import onnx

    from .onnx import _save

    proto = onnx.load(str(path))
    initializers = {i.name for i in proto.graph.initializer}
    for value in [*(i for i in proto.graph.input if i.name not in initializers),
                  *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and (dims[0].dim_param or dims[0].dim_value in (0, 1, batch)):
            dims[0].Clear()
            dims[0].dim_value = batch
    # Shapes inferred at the dynamic batch would contradict the pinned ones: infer them again.
    del proto.graph.value_info[:]
    _save(onnx.shape_inference.infer_shapes(proto), path)


def pin_openvino(xml: Path, batch: int) -> None:
    """Reshapes an OpenVINO IR's image input to ``batch`` and saves it again, in place."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 4:
            shapes[port] = ov.PartialShape([batch, *shape[1:]])
    try:
        model.reshape(shapes)
    except Exception as exc:  # OpenVINO names the op whose shape does not propagate
        raise ModelError(f"OpenVINO cannot fix {xml.name} at batch {batch}: "
                         f"{str(exc).strip().splitlines()[0][:300]}") from None
    # Saved beside, then moved over: the .bin is rewritten with the .xml.
    partial = xml.with_name(xml.stem + ".batch.xml")
    compressed = any(op.get_element_type() == ov.Type.f16 for op in model.get_ops()
                     if op.get_type_name() == "Constant")
    ov.save_model(model, str(partial), compress_to_fp16=compressed)
    partial.replace(xml)
    partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))


def check_batched(path: Path, *, name: str, height: int, width: int, source: str,
                  count: int = 2) -> float:
    """Runs ``count`` different images as one batch and each alone; they must agree.

    Returns:
        The largest |difference| (float noise only).

    Raises:
        ModelError: the file does not run at batch ``count``, or mixes the images up (a
            reshape or a reduction across the batch traced into the graph).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    rng = np.random.default_rng(2026)
    images = rng.random((count, 3, height, width), dtype=np.float32)
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        together = session.run(None, {name: images})[0]
        alone = np.concatenate([session.run(None, {name: images[i:i + 1]})[0]
                                for i in range(count)], axis=0)
    except Exception as exc:  # onnxruntime's untyped errors: a shape fixed inside the graph
        raise ModelError(f"{source} does not run at batch {count}: "
                         f"{str(exc).strip().splitlines()[0][:300]}",
                         hint="A reshape or view in the model fixes the batch at 1; write it "
                              "with x.shape[0] (or -1), or export without --batch.") from None
    if together.shape != alone.shape:
        raise ModelError(f"{source} at batch {count} outputs {list(together.shape)}, its "
                         f"images one by one {list(alone.shape)}.",
                         hint="Export without --batch.")
    diff = float(np.max(np.abs(together - alone)))
    scale = max(1.0, float(np.max(np.abs(alone))))
    if diff > 1e-3 * scale:
        raise ModelError(f"{source} computes images differently in a batch of {count} than "
                         f"alone (max |diff| {diff:.3g}): the graph mixes the batch's images.",
                         hint="Export without --batch, or fix the model's batch handling.")
    return diff
