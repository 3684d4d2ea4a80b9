"""LoadedModel -> one static-shape ONNX file, checked and (where it works) slimmed.

``torch.onnx.export(dynamo=False)``: the dynamo exporter writes external ``.onnx.data`` files
and at opset 17 produced an invalid model (Split num_outputs, see shared/TOOLCHAIN.md). The
input is static [1, 3, H, W] because NPU compilers (OpenVINO NPU, RKNN, Hailo) refuse dynamic
shapes. Facts about the export (whether slimming ran, the output shape, the labels) are
written into the file's ``metadata_props`` so the file describes itself wherever it goes;
:func:`describe_onnx` reads them back.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.bundle import Format, Manifest
from edgekit.errors import ModelError
from edgekit.modelfile import FileOptions

from .loaders import LoadedModel, _torch, first_line, onnx_input_dims, read_onnx

if TYPE_CHECKING:
    import onnx

__all__ = ["export_onnx", "describe_onnx", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "images"
OUTPUT_NAME = "output0"  # the Ultralytics names: users' tools find the tensors where they look
_META = "edgekit."


def export_onnx(model: LoadedModel, path: str | Path, *, imgsz: int | tuple[int, int],
                opset: int = 17, simplify: bool = True,
                labels: list[str] | None = None,
                file_options: FileOptions | None = None, batch: int | str = 1) -> Path:
    """Writes ``model`` as a static-shape ONNX detector at ``path``.

    Args:
        model: A loaded torch module or ONNX file (see :func:`~edgekit.export.load_model`).
        path: Where to write the ``.onnx`` file.
        imgsz: Input size: one int for square, or (height, width).
        opset: The ONNX opset to pin (ignored for an ONNX source, which keeps its own).
        simplify: Slim the graph with onnxslim; if slimming fails, the unslimmed (checked)
            model is kept and ``edgekit.simplified`` in its metadata says why.
        labels: Class names; their count must match the head's output. Without them the
            count is inferred from the output shape.
        file_options: What the user said about the model (``--head``, preprocessing flags);
            the head is recognised from the outputs otherwise.
        batch: 1, or anything else for a dynamic batch axis (``export --batch``, see
            ``batch.py``: a fixed N is pinned into the finished files), checked image by image.

    Returns:
        ``path``.

    Raises:
        ModelError: The model fails on a [1, 3, H, W] input, its output is not a
            [1, 4 + classes, N] detection head, or the ONNX checker refuses the result.
    """
    height, width = _pair(imgsz)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as work:
        raw = Path(work) / "raw.onnx"
        batched = batch != 1
        if model.is_onnx:
            output_shape = _static_copy(model, raw, height, width, batched=batched)
        else:
            output_shape = _trace(model, raw, height, width, opset, batched=batched)
        _check_head(raw, labels, model.source, file_options)
        proto = read_onnx(raw)  # full_check: type and shape inference over the whole graph
        proto, note = _slim(proto) if simplify else (proto, "no (not requested)")
        if batched:
            from .batch import check_batched

            _save(proto, raw)
            check_batched(raw, name=_first_input(proto).name, height=height, width=width,
                          source=model.source)
    _annotate(proto, simplified=note, output_shape=output_shape, labels=labels,
              source=model.description)
    _save(proto, path)
    return path


def describe_onnx(path: str | Path) -> dict[str, Any]:
    """Reads what edgekit needs from an ONNX file: tensor names, shapes, opset and metadata.

    Returns:
        A dict with ``input_name``, ``input_shape``, ``output_name``, ``output_shape``
        (the traced one where edgekit wrote it), ``opset``, ``simplified`` and ``labels``.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key[len(_META):]: p.value for p in proto.metadata_props
            if p.key.startswith(_META)}
    initializers = {i.name for i in proto.graph.initializer}
    first_input = next(i for i in proto.graph.input if i.name not in initializers)
    output = proto.graph.output[0]
    dims = [d.dim_value or d.dim_param for d in output.type.tensor_type.shape.dim]
    return {
        "input_name": first_input.name,
        "input_shape": onnx_input_dims(proto),
        "output_name": output.name,
        "output_shape": json.loads(meta["output_shape"]) if "output_shape" in meta else dims,
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0),
        "simplified": meta.get("simplified", "unknown"),
        "labels": json.loads(meta["labels"]) if "labels" in meta else None,
    }


def _pair(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    if height <= 0 or width <= 0:
        raise ModelError(f"Image size must be positive, got {imgsz}.")
    return int(height), int(width)


def recognise(path: Path, labels: list[str] | None, source: str,
              options: FileOptions | None = None) -> Manifest:
    """The head, labels and preprocessing of an ONNX file, as every command reads them (the
    one model-file loader); errors name the source model."""
    from edgekit.modelfile import open_model_file

    given = options or FileOptions()
    if labels:
        given = replace(given, labels=tuple(labels))
    try:
        return open_model_file(path, options=given).manifest
    except ModelError as exc:
        raise ModelError(f"{source}: {exc.message}", hint=exc.hint) from None


def _check_head(path: Path, labels: list[str] | None, source: str,
                options: FileOptions | None) -> None:
    """Refuses a model no head decodes (or whose class count contradicts the labels)."""
    manifest = recognise(path, labels, source, options)
    from edgekit.backends import load_backend
    from edgekit.detector import make_head_checked

    try:
        make_head_checked(manifest, load_backend(path, Format.ONNX))
    except ModelError as exc:
        raise ModelError(f"{source}: {exc.message}", hint=exc.hint) from None


# --- torch -> ONNX -----------------------------------------------------------------------


def _trace(model: LoadedModel, target: Path, height: int, width: int, opset: int, *,
           batched: bool = False) -> tuple:
    torch = _torch()
    net = _exportable(model.module)
    dummy = torch.zeros(1, 3, height, width)
    try:
        with torch.no_grad():
            shape = tuple(int(d) for d in _first_tensor(net(dummy)).shape)
    except Exception as exc:  # user models raise anything on a wrong input size
        raise ModelError(
            f"{model.source} fails on a [1, 3, {height}, {width}] input: {first_line(exc)}",
            hint="Pass the image size the model was built for (imgsz); many detectors need "
                 "multiples of 32.",
        ) from None
    with warnings.catch_warnings():
        # dynamo=False is a deliberate choice (see module docstring); its deprecation notice
        # would only confuse users.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        # Harmless here: torch.export programs check their (static) input shape in Python,
        # and TorchScript methods have no Python signature to inspect.
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean",
                                category=torch.jit.TracerWarning, module="torch")
        warnings.filterwarnings("ignore", message="no signature found for <torch.ScriptMethod")
        try:
            torch.onnx.export(
                net, (dummy,), str(target), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                do_constant_folding=True,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                if batched else None,
            )
        except Exception as exc:  # unsupported ops, data-dependent control flow
            raise ModelError(f"torch.onnx.export failed for {model.source}: {first_line(exc)}",
                             hint=f"Check the model's ops are supported at opset {opset}.") \
                from None
    _keep_first_output(target)
    return shape


def _exportable(module: Any) -> Any:
    torch = _torch()
    # Tracing refuses a TorchScript module wrapped in another module ("not part of the active
    # trace"): it is exported as it is, and extra outputs are pruned from the graph after.
    if isinstance(module, torch.jit.ScriptModule):
        return module
    return _single_output(_fused(module))


def _first_tensor(out: Any) -> Any:
    """The detection tensor of a forward's result: many detectors return (y, features)."""
    while isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not hasattr(out, "shape"):
        raise ModelError(f"the model returns {type(out).__name__}; a detection head returns "
                         "one [1, 4 + classes, N] tensor")
    return out


def _keep_first_output(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    if len(proto.graph.output) > 1:
        del proto.graph.output[1:]  # onnxslim then drops the nodes only they needed
        _save(proto, path)


def _fused(module: Any) -> Any:
    """Fuses Conv+BN where the model offers it, on a copy: parity compares against the
    original, so a fusion bug shows up as a parity failure instead of hiding."""
    if not callable(getattr(module, "fuse", None)):
        return module
    clone = copy.deepcopy(module)
    fused = clone.fuse()
    return fused if fused is not None and callable(fused) else clone


def _single_output(module: Any) -> Any:
    """Wraps a module so the ONNX graph has one output, and export never calls its train()."""
    torch = _torch()

    class SingleOutput(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return _first_tensor(self.inner(x))

        def train(self, mode: bool = True) -> SingleOutput:
            # The inner module is already in eval mode, and torch.export modules raise on
            # train()/eval(), which torch.onnx.export calls around tracing.
            self.training = mode
            return self

    return SingleOutput(module)


# --- ONNX -> ONNX ------------------------------------------------------------------------


def _static_copy(model: LoadedModel, target: Path, height: int, width: int, *,
                 batched: bool = False) -> tuple:
    """Copies an ONNX source with its image input pinned to [1, 3, H, W]; returns the real
    output shape (from one onnxruntime run: symbolic output dims say nothing)."""
    import onnx

    proto = read_onnx(model.onnx_path)
    dims = onnx_input_dims(proto)
    _check_input(dims, height, width, model.source)
    graph_input = _first_input(proto)
    if graph_input.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ModelError(f"{model.source}: the input is not float32; edgekit exports float "
                         "models (quantize after export).")
    shape = graph_input.type.tensor_type.shape.dim
    for dim, value in zip(shape, (1, 3, height, width), strict=True):
        dim.Clear()
        dim.dim_value = value
    if batched:  # a named dim: the batch stays free (checked by check_batched)
        shape[0].Clear()
        shape[0].dim_param = "batch"
    _refuse_reduced_precision(proto, model.source)
    _save(proto, target)
    return tuple(_run_once(target, graph_input.name, height, width).shape)


def _check_input(dims: list, height: int, width: int, source: str) -> None:
    if len(dims) != 4 or (isinstance(dims[1], int) and dims[1] != 3):
        raise ModelError(f"{source}: the image input has shape {dims}; edgekit needs NCHW "
                         "[1, 3, H, W].")
    for have, want, what in ((dims[0], 1, "batch"), (dims[2], height, "height"),
                             (dims[3], width, "width")):
        if isinstance(have, int) and have != want:
            raise ModelError(f"{source}: its input {what} is fixed at {have}, not {want}.",
                             hint=f"Export with imgsz matching the model's input {dims}.")


_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
              "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def _refuse_reduced_precision(proto: onnx.ModelProto, source: str) -> None:
    """The bundle records this file as fp32 and checks parity at fp32 tolerances, so a
    quantized or fp16 source must not slip in under that label."""
    import onnx

    ops = {node.op_type for node in proto.graph.node}
    fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    if ops & _QUANT_OPS or fp16:
        what = "quantized" if ops & _QUANT_OPS else "fp16"
        raise ModelError(f"{source} is a {what} model; edgekit imports fp32 ONNX models.",
                         hint="Export the float32 model; edgekit quantizes with calibration "
                              "and checks the accuracy itself.")


def _first_input(proto: onnx.ModelProto) -> Any:
    initializers = {i.name for i in proto.graph.initializer}
    return next(i for i in proto.graph.input if i.name not in initializers)


def session_feed(session: Any, image: Any, name: str | None = None) -> dict[str, Any]:
    """An onnxruntime feed: the image, plus RT-DETR/D-FINE's target-size input (the image's
    own [[W, H]], so boxes come back in input pixels) where the model has one.

    Raises:
        ModelError: the model takes another input edgekit cannot fill.
    """
    from edgekit.heads.detr import size_input, target_sizes

    inputs = session.get_inputs()
    name = name or inputs[0].name
    feed = {name: image}
    for info in inputs:
        if info.name == name:
            continue
        if size_input([_Info(info)]) is None:
            raise ModelError(f"The model takes an input '{info.name}' {info.shape} besides the "
                             "image, which edgekit cannot fill.",
                             hint="Export it with the image as its only input.")
        feed[info.name] = target_sizes(image.shape[2], image.shape[3])
    return feed


class _Info:
    """onnxruntime's NodeArg as the name/shape/dtype triple the heads read."""

    def __init__(self, arg: Any) -> None:
        import numpy as np

        self.name, self.shape = arg.name, tuple(arg.shape)
        self.dtype = np.dtype(np.int64) if "int" in arg.type else np.dtype(np.float32)


def _run_once(path: Path, name: str, height: int, width: int) -> Any:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        image = np.zeros((1, 3, height, width), np.float32)
        return session.run(None, session_feed(session, image, name))[0]
    except Exception as exc:  # onnxruntime raises untyped errors
        raise ModelError(f"onnxruntime cannot run {path.name} at [1, 3, {height}, {width}]: "
                         f"{first_line(exc)}") from None


# --- slimming and saving -----------------------------------------------------------------


def _slim(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Slims with onnxslim; on any failure keeps the checked original and says why."""
    import onnx

    try:
        import onnxslim
    except ImportError:
        return proto, "no (onnxslim is not installed)"
    try:
        slimmed = onnxslim.slim(copy.deepcopy(proto))
        onnx.checker.check_model(slimmed, full_check=True)
    except Exception as exc:  # a slimmer bug must not cost the user their export
        return proto, f"no (onnxslim {onnxslim.__version__} failed: {first_line(exc)})"
    return slimmed, f"onnxslim {onnxslim.__version__}"


def _annotate(proto: onnx.ModelProto, **facts: Any) -> None:
    keep = [p for p in proto.metadata_props if not p.key.startswith(_META)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in facts.items():
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key = _META + key
            entry.value = value if isinstance(value, str) else json.dumps(list(value))


def _save(proto: onnx.ModelProto, path: Path) -> None:
    import onnx

    # Written next to the target, then moved: a reader never sees half a file.
    partial = path.with_name(path.name + ".partial")
    onnx.save(proto, str(partial))
    shutil.move(partial, path)
