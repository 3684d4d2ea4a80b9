"""FLOPs per inference, counted from an ONNX graph: the work a model asks of the machine.

The counter is onnx-tool (a maintained ONNX profiler: shape inference, then MACs per node,
elementwise ops included); one MAC is two FLOPs. On the sample detector it gives 165.8 M Conv
MACs (bias adds included) beside 47.1 M for the SiLU sigmoids. Where onnx-tool is not
installed or cannot profile a graph, edgekit counts the multiply-accumulates of Conv,
ConvTranspose, MatMul and Gemm (and their quantized forms) itself from the shapes
``onnx.shape_inference`` infers (164.4 M on the sample: no bias, no elementwise ops); the
result's ``method`` says which counted. A node whose shapes are not static is listed in
``uncounted`` rather than guessed.

The count is the network's, not the file's: an fp16, int8, OpenVINO or TFLite artifact of
the same bundle does the same multiply-accumulates, so one count from the bundle's ONNX file
serves every artifact (``source`` names that file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

METHOD = ("edgekit: MACs of Conv/ConvTranspose/MatMul/Gemm (and quantized forms) from onnx "
          "shape inference, x2; elementwise ops not counted")

# op type -> index of the weight input whose shape gives the per-output reduction
_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
# op type -> (index of A, index of B)
_MATMUL_INPUTS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
                  "Gemm": (0, 1)}


def _shapes(model: Any) -> dict[str, tuple[int, ...] | None]:
    """Every tensor's static shape (None where any dim is unknown)."""
    from onnx import numpy_helper

    out: dict[str, tuple[int, ...] | None] = {}
    graph = model.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        out[info.name] = shape if all(d > 0 for d in shape) else None
    for init in graph.initializer:
        out[init.name] = tuple(numpy_helper.to_array(init).shape) if init.dims else ()
    return out


def _node_macs(node: Any, shapes: dict[str, tuple[int, ...] | None]) -> int | None:
    """One node's multiply-accumulates, 0 for ops not counted, None when shapes are unknown."""
    def shape(index: int) -> tuple[int, ...] | None:
        return shapes.get(node.input[index]) if index < len(node.input) else None

    out = shapes.get(node.output[0]) if node.output else None
    if node.op_type in _CONV_WEIGHT:
        weight = shape(_CONV_WEIGHT[node.op_type])
        if out is None or weight is None:
            return None
        return math.prod(out) * math.prod(weight[1:])  # each output: C_in/group x kernel MACs
    if node.op_type == "ConvTranspose":
        x, weight = shape(0), shape(1)
        if x is None or weight is None:
            return None
        return math.prod(x) * math.prod(weight[1:])  # each input scatters C_out/group x kernel
    if node.op_type in _MATMUL_INPUTS:
        a_index, _ = _MATMUL_INPUTS[node.op_type]
        a = shape(a_index)
        if out is None or a is None:
            return None
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        k = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
        return math.prod(out) * k
    return 0


def count_flops(path: str | Path) -> dict[str, Any]:
    """FLOPs of one inference of the ONNX model at ``path``: onnx-tool, else edgekit's count.

    Returns:
        ``{"flops", "macs", "by_op": {op: flops}, "uncounted": [node names], "method",
        "source"}``.
    """
    try:
        return onnx_tool_flops(path)
    except Exception as exc:  # noqa: BLE001 - not installed, or an op it cannot profile
        counted = mac_flops(path)
        counted["method"] += f" (onnx-tool: {type(exc).__name__}: {str(exc)[:120]})"
        return counted


def onnx_tool_flops(path: str | Path) -> dict[str, Any]:
    """onnx-tool's profile of the model: MACs per node, summed per op type, x2."""
    from importlib.metadata import version

    import onnx_tool

    model = onnx_tool.Model(str(path))
    model.graph.shape_infer()
    model.graph.profile()
    by_op: dict[str, int] = {}
    for node in model.graph.nodemap.values():
        macs = int(node.macs[0])
        if macs:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    flops = sum(by_op.values())
    return {"flops": flops, "macs": flops // 2, "by_op": by_op, "uncounted": [],
            "method": f"onnx-tool {version('onnx-tool')} profile: MACs x2, elementwise ops "
                      "included", "source": Path(path).name}


def mac_flops(path: str | Path) -> dict[str, Any]:
    """edgekit's own count: Conv/ConvTranspose/MatMul/Gemm MACs from inferred shapes, x2."""
    from edgekit.errors import require

    onnx = require("onnx", extra="export", purpose="counting a model's FLOPs")
    model = onnx.load(str(path), load_external_data=False)
    model = onnx.shape_inference.infer_shapes(model)
    shapes = _shapes(model)
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    for node in model.graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            uncounted.append(node.name or node.op_type)
        elif macs:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    flops = sum(by_op.values())
    return {"flops": flops, "macs": flops // 2, "by_op": by_op, "uncounted": uncounted,
            "method": METHOD, "source": Path(path).name}


def bundle_flops(bundle: Any) -> dict[str, Any]:
    """The FLOPs of a bundle's network, counted from its ONNX artifact (fp32 preferred).

    Returns:
        :func:`count_flops`'s figures, or ``{"flops": None, "reason": ...}`` when the bundle
        has no ONNX file (OpenVINO/TFLite graphs are not counted) or onnx is not installed.
    """
    from edgekit.errors import EdgekitError

    onnx_files = [a for a in bundle.manifest.artifacts if str(a.format) == "onnx"]
    if not onnx_files:
        return {"flops": None, "reason": "the bundle has no ONNX artifact to count from"}
    best = sorted(onnx_files, key=lambda a: str(a.precision) != "fp32")[0]
    try:
        return count_flops(bundle.file(best))
    except EdgekitError as exc:
        return {"flops": None, "reason": exc.message}


def utilisation(flops: float | None, latency_ms: float, peak_gflops: float | None
                ) -> dict[str, float | None]:
    """Achieved GFLOP/s at ``latency_ms`` per inference, and its fraction of the peak."""
    if not flops or latency_ms <= 0:
        return {"gflops": None, "fraction": None}
    achieved = flops / (latency_ms / 1e3) / 1e9
    return {"gflops": achieved, "fraction": achieved / peak_gflops if peak_gflops else None}
