"""ONNX -> torch module with static shapes, for TFLite export without TensorFlow.

A user's ``.onnx`` has no torch module for litert-torch. onnx2torch rebuilds one (an
``fx.GraphModule`` of one module per ONNX node), converted here in about a second instead of
onnx2tf's TensorFlow round trip (64 minutes per precision measured on a real YOLOv8, issue
14). Two things stand between onnx2torch's module and ``torch.export``, each handled here:

- Its modules read shape-like inputs (Slice starts/ends, Reshape shapes, Resize sizes, Split
  sizes, Pad pads, ...) as tensor values in Python (``.numpy()``, ``.tolist()``), which
  ``torch.export`` cannot trace. The model's input size is fixed by the bundle, so one eager
  run records every node's value; nodes that do not depend on the image are folded into
  constants, and modules whose extra inputs are constants are rebuilt with those values as
  Python numbers (:data:`_STATIC`).
- onnx2torch imports torchvision at import time, for its NonMaxSuppression and RoiAlign
  converters only. torchvision has no CPU build matching torch's CPU wheel on the machines
  this project targets, and importing the CUDA one fails (shared/TOOLCHAIN.md); then those two
  ops are refused up front, by name, and the rest converts.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import MissingDependencyError, ModelError

__all__ = ["torch_from_onnx", "unsupported_ops", "UnsupportedOnnxOps", "onnx2torch_available"]

# Ops onnx2torch converts through torchvision (see the module docstring).
_TORCHVISION_OPS = frozenset({"NonMaxSuppression", "RoiAlign"})


class UnsupportedOnnxOps(ModelError):
    """onnx2torch has no converter for some ops of the model (``.ops`` names them)."""

    def __init__(self, message: str, *, ops: list[str], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.ops = ops


def onnx2torch_available() -> bool:
    """Whether onnx2torch is installed (checked without importing it)."""
    return importlib.util.find_spec("onnx2torch") is not None


def _onnx2torch() -> Any:
    if not onnx2torch_available():
        error = MissingDependencyError(
            "onnx2torch", extra="tflite",
            purpose="converting ONNX-only models to TFLite without TensorFlow")
        # Its metadata requires torchvision, which pulls a build that does not import next
        # to torch's CPU wheel: `make setup` installs it with --no-deps.
        error.hint = "pip install --no-deps onnx2torch==1.5.15 (as `make setup` does)"
        raise error
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    placeholder = False
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:  # missing, or a CUDA build next to a CPU torch: RuntimeError
            placeholder = _torchvision_placeholder()
    try:
        import onnx2torch
    finally:
        if placeholder:  # onnx2torch keeps its reference; nothing else may find it
            sys.modules.pop("torchvision", None)
            sys.modules.pop("torchvision.ops", None)
    onnx2torch.__edgekit_without_torchvision__ = placeholder
    return onnx2torch


def _torchvision_placeholder() -> bool:
    """Lets ``import onnx2torch`` succeed without torchvision: the two converters that use it
    are never reached, because :func:`unsupported_ops` refuses their ops first."""
    vision = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")

    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise ModelError("NonMaxSuppression/RoiAlign in an ONNX model need torchvision.")

    ops.nms = ops.roi_align = ops.box_convert = missing
    vision.ops = ops
    sys.modules["torchvision"] = vision
    sys.modules["torchvision.ops"] = ops
    return True


def unsupported_ops(proto: Any) -> list[str]:
    """ONNX op types of ``proto`` that onnx2torch cannot convert here (sorted, unique)."""
    placeholder = _onnx2torch().__edgekit_without_torchvision__
    from onnx2torch.node_converters.registry import get_converter

    opsets = {o.domain or "": o.version for o in proto.opset_import}
    missing = set()
    for node in proto.graph.node:
        domain = node.domain or ""
        if placeholder and node.op_type in _TORCHVISION_OPS:
            missing.add(node.op_type)
            continue
        try:
            get_converter(node.op_type, opsets.get(domain, opsets.get("", 1)), domain)
        except NotImplementedError:
            missing.add(node.op_type if domain in ("", "ai.onnx") else f"{domain}.{node.op_type}")
    return sorted(missing)


def torch_from_onnx(path: Path, *, height: int, width: int, source: str) -> Any:
    """A torch module computing what the ONNX file computes, traceable by ``torch.export``.

    Args:
        path: The ONNX file (one image input [1, 3, H, W]).
        height: The input height the bundle fixes.
        width: The input width.
        source: The model source, named in errors.

    Returns:
        An ``fx.GraphModule`` in eval mode, taking the NCHW image; its submodules are named
        after the ONNX nodes (so converted tensors can be traced back to them).

    Raises:
        UnsupportedOnnxOps: onnx2torch has no converter for some ops (named).
        ModelError: The model takes inputs besides the image, or the conversion fails.
        MissingDependencyError: onnx2torch is not installed.
    """
    import onnx
    import torch

    onnx2torch = _onnx2torch()
    proto = onnx.load(str(path))
    missing = unsupported_ops(proto)
    if missing:
        raise UnsupportedOnnxOps(
            f"onnx2torch cannot convert the op{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} of {source}.", ops=missing,
            hint="Install the onnx2tf extra (TensorFlow) to convert it that way, export the "
                 "model from PyTorch, or export it to ONNX without those ops.")
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(
            f"{source} takes {len(inputs)} inputs ({', '.join(inputs)}); the ONNX->TFLite "
            "path converts models with one image input.",
            hint="Export the model with its extra inputs fixed (e.g. RT-DETR's "
                 "orig_target_sizes as a constant), or skip the tflite format.")
    try:
        module = onnx2torch.convert(proto).eval()
        with torch.no_grad():
            _make_static(module, torch.zeros(1, 3, height, width))
    except ModelError:
        raise
    except Exception as exc:  # onnx2torch raises untyped errors for odd graphs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"onnx2torch cannot convert {source}: {first[:300]}",
                         hint="Export the model from PyTorch instead, or install the onnx2tf "
                              "extra (TensorFlow).") from None
    return module


# --- static shapes -------------------------------------------------------------------------


def _record(module: Any, sample: Any) -> dict[Any, Any]:
    """Every node's value on one eager run (the shapes are fixed, so these are the shapes
    and constants of every run)."""
    import torch.fx

    values: dict[Any, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node: Any) -> Any:
            values[node] = result = super().run_node(node)
            return result

    Recorder(module).run(sample)
    return values


def _make_static(module: Any, sample: Any) -> None:
    """Folds image-independent nodes into constants and rebuilds modules that read
    constant inputs in Python (see the module docstring)."""
    import torch

    values = _record(module, sample)
    graph = module.graph
    dynamic: set[Any] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            dynamic.add(node)
        elif node.op in ("call_module", "call_function", "call_method"):
            shape_only = node.op == "call_module" and \
                type(module.get_submodule(node.target)).__name__ == "OnnxShape"
            if not shape_only and any(a in dynamic for a in node.all_input_nodes):
                dynamic.add(node)
    folded = 0
    for node in list(graph.nodes):
        if node.op in ("placeholder", "output", "get_attr") or node in dynamic:
            continue
        value = values.get(node)
        if not isinstance(value, torch.Tensor) or not node.users:
            continue  # tuples (Split of a constant) stay: their getitems fold instead
        name = f"edgekit_folded_{folded}"
        folded += 1
        module.register_buffer(name, value.detach().clone())
        with graph.inserting_before(node):
            constant = graph.get_attr(name)
        node.replace_all_uses_with(constant)
        values[constant] = value
    for node in graph.nodes:
        if node.op != "call_module" or node not in dynamic:
            continue
        inner = module.get_submodule(node.target)
        rebuild = _STATIC.get(type(inner).__name__)
        if rebuild is None:
            continue
        # The module's inputs after the data, in its forward's order (kwargs included).
        bound = inspect.signature(inner.forward).bind(*node.args, **node.kwargs)
        bound.apply_defaults()
        data, *extra = bound.arguments.values()
        if not extra or any(isinstance(a, torch.fx.Node) and a in dynamic for a in extra):
            continue
        consts = [values[a] if isinstance(a, torch.fx.Node) else a for a in extra]
        static = rebuild(inner, values[data], consts, values[node])
        name = f"{node.target}_static"
        module.add_submodule(name, static)
        node.target, node.args, node.kwargs = name, (data,), {}
    graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    module.recompile()


class _Fn:
    """A torch module from a function of the one dynamic input (built lazily: torch loads
    only when the static pass runs)."""

    @staticmethod
    def make(fn: Callable[[Any], Any], name: str) -> Any:
        from torch import nn

        class Static(nn.Module):
            def forward(self, x: Any) -> Any:
                return fn(x)

        Static.__name__ = Static.__qualname__ = name
        return Static()


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value.reshape(-1).tolist()] if value is not None else []


def _reshape(_inner: Any, _x: Any, _consts: list[Any], out: Any) -> Any:
    shape = tuple(out.shape)
    return _Fn.make(lambda x: x.reshape(shape), "StaticReshape")


def _expand(_inner: Any, _x: Any, _consts: list[Any], out: Any) -> Any:
    shape = tuple(out.shape)
    return _Fn.make(lambda x: x.expand(shape), "StaticExpand")


def _tile(_inner: Any, x: Any, _consts: list[Any], out: Any) -> Any:
    repeats = tuple(o // i for o, i in zip(out.shape, x.shape, strict=True))
    return _Fn.make(lambda t: t.repeat(repeats), "StaticTile")


def _slice(_inner: Any, x: Any, consts: list[Any], _out: Any) -> Any:
    """ONNX Slice with constant starts/ends/axes/steps as Python slicing (negative steps by
    index_select: torch slices only forward)."""
    import torch

    starts, ends = _ints(consts[0]), _ints(consts[1])
    axes = _ints(consts[2]) if len(consts) > 2 and consts[2] is not None else \
        list(range(len(starts)))
    steps = _ints(consts[3]) if len(consts) > 3 and consts[3] is not None else [1] * len(starts)
    plan = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        picked = range(x.shape[axis])[slice(start, end, step)]
        plan.append((axis, picked))

    def run(t: Any) -> Any:
        for axis, picked in plan:
            if picked.step > 0:
                index = [slice(None)] * axis + [slice(picked.start, picked.stop, picked.step)]
                t = t[tuple(index)]
            else:
                t = torch.index_select(t, axis, torch.tensor(list(picked), dtype=torch.long))
        return t

    return _Fn.make(run, "StaticSlice")


def _split(inner: Any, _x: Any, _consts: list[Any], out: Any) -> Any:
    import torch

    axis = inner.axis
    sizes = [int(o.shape[axis]) for o in out]
    return _Fn.make(lambda t: torch.split(t, sizes, dim=axis), "StaticSplit")


def _resize(inner: Any, x: Any, _consts: list[Any], out: Any) -> Any:
    from onnx2torch.node_converters.resize import _onnx_mode_to_torch_mode
    from torch.nn import functional

    size = tuple(int(s) for s in out.shape[2:])
    mode = _onnx_mode_to_torch_mode(inner.onnx_mode, x.dim() - 2)
    align = inner.align_corners
    return _Fn.make(lambda t: functional.interpolate(t, size=size, mode=mode,
                                                     align_corners=align), "StaticResize")


def _pad(inner: Any, _x: Any, consts: list[Any], _out: Any) -> Any:
    from onnx2torch.node_converters.pad import _onnx_padding_to_torch, _torch_padding_to_mode_format
    from torch.nn import functional

    pads = _torch_padding_to_mode_format(_onnx_padding_to_torch(_ints(consts[0])), inner.mode)
    value = float(consts[1].reshape(-1)[0]) if len(consts) > 1 and consts[1] is not None and \
        consts[1].numel() else 0.0
    mode = inner.mode
    return _Fn.make(lambda t: functional.pad(t, pads, mode=mode, value=value), "StaticPad")


def _topk(inner: Any, _x: Any, consts: list[Any], _out: Any) -> Any:
    import torch

    k, dim, largest, ordered = _ints(consts[0])[0], inner.dim, inner.largest, inner.sorted

    def run(t: Any) -> Any:
        top = torch.topk(t, k=k, dim=dim, largest=largest, sorted=ordered)
        return top.values, top.indices

    return _Fn.make(run, "StaticTopK")


def _reduce_sum(inner: Any, x: Any, consts: list[Any], _out: Any) -> Any:
    axes = sorted(a % x.dim() for a in _ints(consts[0] if consts else None))
    keep = bool(inner._keepdims)
    if not axes:
        return _Fn.make((lambda t: t) if inner._noop_with_empty_axes else
                        (lambda t: t.sum(dim=tuple(range(t.dim())), keepdim=keep)),
                        "StaticReduceSum")
    return _Fn.make(lambda t: t.sum(dim=tuple(axes), keepdim=keep), "StaticReduceSum")


def _gather(inner: Any, x: Any, consts: list[Any], out: Any) -> Any:
    """Gather with constant indices as select/slice (a traced index tensor does not lower:
    litert-torch asks for its value)."""
    import torch

    axis = inner._axis % x.dim()
    picked = [i % x.shape[axis] for i in _ints(consts[0])]
    shape = tuple(out.shape)
    if consts[0].dim() == 0:
        return _Fn.make(lambda t: t.select(axis, picked[0]), "StaticGather")
    first = picked[0] if picked else 0
    if picked == list(range(first, first + len(picked))):
        index = (slice(None),) * axis + (slice(first, first + len(picked)),)
        return _Fn.make(lambda t: t[index].reshape(shape), "StaticGather")
    return _Fn.make(lambda t: torch.index_select(
        t, axis, torch.tensor(picked, dtype=torch.long)).reshape(shape), "StaticGather")


# onnx2torch module class -> rebuild(module, input value, constant inputs, output value):
# the modules whose forward reads a constant input's values in Python. Squeeze/Unsqueeze
# with axes as inputs (opset 13+) only reshape.
_STATIC: dict[str, Callable[[Any, Any, list[Any], Any], Any]] = {
    "OnnxSlice": _slice, "OnnxReshape": _reshape, "OnnxExpand": _expand, "OnnxTile": _tile,
    "OnnxSplit13": _split, "OnnxResize": _resize, "OnnxPadDynamic": _pad, "OnnxTopK": _topk,
    "OnnxReduceSumDynamicAxes": _reduce_sum, "OnnxUnsqueezeDynamicAxes": _reshape,
    "OnnxSqueezeDynamicAxes": _reshape, "OnnxGather": _gather,
}
