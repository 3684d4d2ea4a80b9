"""Small odd models that edgekit did not export: several inputs, dynamic dims, int inputs.

Real files for the real runtimes: ONNX written with onnx.helper, OpenVINO IR converted from
it, and .tflite files written as flatbuffers with the schema that ships inside ai-edge-litert
(no TensorFlow, no converter: the file is exactly what the test asks for).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_multi_input_onnx(path: Path) -> Path:
    """ONNX with three inputs: a float image with dynamic batch/H/W, a float scale, int64 ids.

    Outputs: ``pooled`` = mean over H, W of image times scale [batch, 3]; ``ids_plus`` = ids + 1.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["pooled"]),
        helper.make_node("Add", ["ids", "one"], ["ids_plus"]),
    ]
    graph = helper.make_graph(
        nodes, "odd",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("ids_plus", TensorProto.INT64, ["n"])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
         numpy_helper.from_array(np.array(1, np.int64), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_openvino_ir(onnx_path: Path, xml_path: Path) -> Path:
    """Converts an ONNX file to OpenVINO IR (.xml + .bin) with OpenVINO's own converter."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path))
    return xml_path


# --- .tflite flatbuffers -------------------------------------------------------------------

def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tensor(schema, name: str, shape: list[int], ttype: int, buffer: int,
            quant: tuple[float, int] | None = None):
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = [1 if d < 0 else d for d in shape]
    tensor.shapeSignature = list(shape) if any(d < 0 for d in shape) else None
    tensor.type = ttype
    tensor.buffer = buffer
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(quant[0])], [int(quant[1])]
        tensor.quantization = q
    return tensor


def _op(schema, opcode_index: int, inputs: list[int], outputs: list[int],
        options_type: int = 0, options=None):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, inputs, outputs
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def _write_tflite(path: Path, schema, tensors, inputs, outputs, operators, opcodes,
                  buffers) -> Path:
    import flatbuffers

    codes = []
    for code in opcodes:
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        codes.append(oc)
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs = tensors, inputs, outputs
    subgraph.operators, subgraph.name = operators, "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [subgraph]
    model.description = "edgekit test model"
    model.buffers = []
    for data in buffers:
        buf = schema.BufferT()
        buf.data = None if data is None else np.frombuffer(data, np.uint8).tolist()
        model.buffers.append(buf)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def make_two_input_tflite(path: Path) -> Path:
    """A float NHWC image with a dynamic batch [-1, 8, 8, 3] and an int32 vector [1, 4].

    Outputs: ``doubled`` = image * 2 and ``ids_sum`` = ids + ids.
    """
    s = _schema()
    tt, op = s.TensorType, s.BuiltinOperator
    two = np.array([2.0], np.float32).tobytes()
    tensors = [
        _tensor(s, "image", [-1, 8, 8, 3], tt.FLOAT32, 1),
        _tensor(s, "ids", [1, 4], tt.INT32, 2),
        _tensor(s, "two", [1], tt.FLOAT32, 3),
        _tensor(s, "doubled", [-1, 8, 8, 3], tt.FLOAT32, 4),
        _tensor(s, "ids_sum", [1, 4], tt.INT32, 5),
    ]
    ops = [_op(s, 0, [0, 2], [3], s.BuiltinOptions.MulOptions, s.MulOptionsT()),
           _op(s, 1, [1, 1], [4], s.BuiltinOptions.AddOptions, s.AddOptionsT())]
    return _write_tflite(path, s, tensors, [0, 1], [3, 4], ops, [op.MUL, op.ADD],
                         [None, None, None, two, None, None])


INT8_IN = (0.05, -3)   # (scale, zero_point) of the int8 model's input
INT8_OUT = (0.1, 2)    # ... and of its output


def make_int8_tflite(path: Path) -> Path:
    """An INT8-in, INT8-out model: dequantize, times 2, quantize. Shape [1, 4]."""
    s = _schema()
    tt, op = s.TensorType, s.BuiltinOperator
    two = np.array([2.0], np.float32).tobytes()
    tensors = [
        _tensor(s, "q_in", [1, 4], tt.INT8, 1, INT8_IN),
        _tensor(s, "f_in", [1, 4], tt.FLOAT32, 2),
        _tensor(s, "two", [1], tt.FLOAT32, 3),
        _tensor(s, "f_out", [1, 4], tt.FLOAT32, 4),
        _tensor(s, "q_out", [1, 4], tt.INT8, 5, INT8_OUT),
    ]
    ops = [_op(s, 0, [0], [1]),
           _op(s, 1, [1, 2], [3], s.BuiltinOptions.MulOptions, s.MulOptionsT()),
           _op(s, 2, [3], [4])]
    return _write_tflite(path, s, tensors, [0], [4], ops,
                         [op.DEQUANTIZE, op.MUL, op.QUANTIZE],
                         [None, None, None, two, None, None])


def make_nhwc_detector_tflite(path: Path, *, imgsz: int = 32, num_classes: int = 3,
                              boxes: list[tuple] = ()) -> Path:
    """A tiny YOLOv8-style 'detector' as NHWC .tflite: constant head + 0 * mean(image).

    Input [1, imgsz, imgsz, 3] float; output [1, 4 + nc, N] like :func:`make_yolo_onnx`.
    """
    s = _schema()
    tt, op = s.TensorType, s.BuiltinOperator
    n = max(len(boxes) + 4, 4 + num_classes + 1)  # more anchors than rows, as make_yolo_onnx
    head = np.zeros((1, 4 + num_classes, n), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        head[0, :4, i] = (cx, cy, w, h)
        head[0, 4 + cls, i] = score
    axes = np.array([1, 2, 3], np.int32).tobytes()
    zero = np.zeros((1,), np.float32).tobytes()
    tensors = [
        _tensor(s, "images", [1, imgsz, imgsz, 3], tt.FLOAT32, 1),
        _tensor(s, "axes", [3], tt.INT32, 2),
        _tensor(s, "mean", [1], tt.FLOAT32, 3),
        _tensor(s, "zero", [1], tt.FLOAT32, 4),
        _tensor(s, "z", [1], tt.FLOAT32, 5),
        _tensor(s, "head", list(head.shape), tt.FLOAT32, 6),
        _tensor(s, "output0", list(head.shape), tt.FLOAT32, 7),
    ]
    mean_opts = s.ReducerOptionsT()
    mean_opts.keepDims = False
    ops = [_op(s, 0, [0, 1], [2], s.BuiltinOptions.ReducerOptions, mean_opts),
           _op(s, 1, [2, 3], [4], s.BuiltinOptions.MulOptions, s.MulOptionsT()),
           _op(s, 2, [5, 4], [6], s.BuiltinOptions.AddOptions, s.AddOptionsT())]
    return _write_tflite(path, s, tensors, [0], [6], ops, [op.MEAN, op.MUL, op.ADD],
                         [None, None, axes, None, zero, None, head.tobytes(), None])


def make_detector_bundle(root: Path, *, imgsz: int = 32, int8_labels: bool = False) -> Path:
    """A bundle with the same tiny detector as ONNX, OpenVINO IR and NHWC .tflite (all fp32).

    With ``int8_labels`` the ONNX and .tflite files are also recorded as int8 artifacts: only
    for tests of artifact *choice*, which read the manifest and load nothing.
    """
    from helpers import make_yolo_onnx

    from edgekit.bundle import BundleWriter, Format, InputSpec, Manifest, Precision

    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    boxes = [(10, 12, 8, 6, 1, 0.9), (20, 20, 6, 6, 2, 0.8)]
    onnx_path = make_yolo_onnx(work / "model.onnx", imgsz=imgsz, boxes=boxes)
    xml = make_openvino_ir(onnx_path, work / "model.xml")
    tfl = make_nhwc_detector_tflite(work / "model.tflite", imgsz=imgsz, boxes=boxes)
    manifest = Manifest(name="tiny", labels=["a", "b", "c"],
                        input=InputSpec(shape=(1, 3, imgsz, imgsz)))
    out = root / "bundle"
    with BundleWriter(out, manifest) as writer:
        writer.add_file(onnx_path, format=Format.ONNX, precision=Precision.FP32)
        writer.add_file(xml, format=Format.OPENVINO, precision=Precision.FP32,
                        companions=[work / "model.bin"])
        writer.add_file(tfl, format=Format.TFLITE, precision=Precision.FP32, layout="nhwc")
        if int8_labels:
            writer.add_file(onnx_path, format=Format.ONNX, precision=Precision.INT8,
                            name="model_int8.onnx")
            writer.add_file(tfl, format=Format.TFLITE, precision=Precision.INT8,
                            name="model_int8.tflite", layout="nhwc")
    return out


def make_constant_outputs_tflite(path: Path, outputs: dict[str, np.ndarray], *,
                                 imgsz: int = 64) -> Path:
    """A .tflite with an NHWC float image input whose outputs are the given constant arrays
    plus 0 * mean(image): any output convention as LiteRT gives it (names, order, shapes)."""
    s = _schema()
    tt, op = s.TensorType, s.BuiltinOperator
    axes = np.array([1, 2, 3], np.int32).tobytes()
    zero = np.zeros((1,), np.float32).tobytes()
    tensors = [
        _tensor(s, "input", [1, imgsz, imgsz, 3], tt.FLOAT32, 1),
        _tensor(s, "axes", [3], tt.INT32, 2),
        _tensor(s, "mean", [1], tt.FLOAT32, 3),
        _tensor(s, "zero", [1], tt.FLOAT32, 4),
        _tensor(s, "z", [1], tt.FLOAT32, 5),
    ]
    buffers = [None, None, axes, None, zero, None]
    mean_opts = s.ReducerOptionsT()
    mean_opts.keepDims = False
    ops = [_op(s, 0, [0, 1], [2], s.BuiltinOptions.ReducerOptions, mean_opts),
           _op(s, 1, [2, 3], [4], s.BuiltinOptions.MulOptions, s.MulOptionsT())]
    out_indices = []
    for name, array in outputs.items():
        array = np.asarray(array, np.float32)
        const = len(tensors)
        tensors.append(_tensor(s, f"{name}_const", list(array.shape), tt.FLOAT32, len(buffers)))
        buffers.append(array.tobytes())
        tensors.append(_tensor(s, name, list(array.shape), tt.FLOAT32, len(buffers)))
        buffers.append(None)
        ops.append(_op(s, 2, [const, 4], [const + 1], s.BuiltinOptions.AddOptions,
                       s.AddOptionsT()))
        out_indices.append(const + 1)
    return _write_tflite(path, s, tensors, [0], out_indices, ops, [op.MEAN, op.MUL, op.ADD],
                         buffers)
