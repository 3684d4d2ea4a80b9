"""Helpers shared by the tests: tiny real ONNX detectors and an in-process CLI runner.

A module of its own, not conftest.py: tests/pipeline has a conftest.py too, and
`from helpers import ...` then depends on which one pytest imported first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_yolo_onnx(
    path: Path,
    *,
    imgsz: int = 32,
    num_classes: int = 3,
    boxes: list[tuple[float, float, float, float, int, float]] = (),
) -> Path:
    """Writes a tiny ONNX 'detector' with a YOLOv8-style output [1, 4+nc, N].

    Its output is a constant head (the given cx, cy, w, h, class, score rows) plus 0 times the
    input's mean, so onnxruntime really runs a graph that reads the image.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # More anchors than rows, as every real head has (an [1, 7, 6] tensor reads as NMS output).
    n = max(len(boxes) + 4, 4 + num_classes + 1)
    head = np.zeros((1, 4 + num_classes, n), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        head[0, :4, i] = (cx, cy, w, h)
        head[0, 4 + cls, i] = score
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["head", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
        [
            numpy_helper.from_array(head, "head"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Runs the edgekit CLI in-process: (exit code, stdout, stderr)."""
    from edgekit.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
