"""Decode + NMS time per head at each convention's usual input size, against inference.

Usage: python benchmarks/heads_decode.py [--runs N] [--threads N] [--objects K]

Raw outputs are built at the real sizes (YOLO at 640: 8400 anchors x 80 classes, YOLOv5
25200 rows; DETR 300 queries; BlazeFace 128 with 896 anchors; SCRFD at 640), with K objects
each covered by a cluster of ~20 overlapping candidates above the threshold and low scores
elsewhere, which is what NMS sees from a trained model. Decode + NMS is timed through the
head's own ``decode``. Inference is timed on edgekit's YoloLite (the sample detector's
architecture, 447k parameters) exported to ONNX at the same input size: a deliberately small
real model, so the printed ratio is an upper bound for the YOLOv5s/YOLOX-s/RT-DETR class of
models users deploy, which are 10-100x heavier.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.backends import BackendOptions, load_backend
from edgekit.backends.base import TensorInfo
from edgekit.bundle import Format, InputSpec, OutputSpec
from edgekit.heads import HEADS, make_head
from edgekit.heads.blazeface import anchors_for
from edgekit.heads.yolox import grid

NC = 80


def objects(rng, k: int, size: int) -> np.ndarray:
    centres = rng.uniform(0.1 * size, 0.9 * size, (k, 2))
    sizes = rng.uniform(0.05 * size, 0.3 * size, (k, 2))
    return np.concatenate([centres, sizes], 1).astype(np.float32)


def clusters(rng, n: int, k: int, per: int = 20) -> np.ndarray:
    """Indices of ``per`` candidate rows for each of ``k`` objects."""
    return rng.choice(n, size=(k, per), replace=False)


def yolov8(rng, k):
    n = 8400
    raw = np.zeros((1, 4 + NC, n), np.float32)
    raw[0, :4] = objects(rng, n, 640).T
    raw[0, 4:] = rng.uniform(0, 0.05, (NC, n))
    for obj, rows in zip(objects(rng, k, 640), clusters(rng, n, k), strict=True):
        raw[0, :4, rows] = obj + rng.normal(0, 3, (len(rows), 4))
        raw[0, 4 + rng.integers(NC), rows] = rng.uniform(0.3, 0.9, len(rows))
    return 640, [raw]


def yolov5(rng, k, rows=25200, size=640):
    raw = np.zeros((1, rows, 5 + NC), np.float32)
    raw[0, :, :4] = objects(rng, rows, size)
    raw[0, :, 4] = rng.uniform(0, 0.05, rows)
    raw[0, :, 5:] = rng.uniform(0, 1, (rows, NC))
    for obj, idx in zip(objects(rng, k, size), clusters(rng, rows, k), strict=True):
        raw[0, idx, :4] = obj + rng.normal(0, 3, (len(idx), 4))
        raw[0, idx, 4] = rng.uniform(0.5, 0.95, len(idx))
        raw[0, idx, 5 + rng.integers(NC)] = 0.95
    return size, [raw]


def yolox(rng, k):
    cells, _ = grid(640, 640)
    size, (raw,) = yolov5(rng, k, rows=len(cells))
    raw[0, :, :2] = rng.uniform(0, 1, (len(cells), 2))
    raw[0, :, 2:4] = rng.uniform(0, 2, (len(cells), 2))
    return size, [raw]


def end2end(rng, k):
    raw = np.zeros((1, 300, 6), np.float32)
    boxes = objects(rng, 300, 640)
    raw[0, :, :2], raw[0, :, 2:4] = boxes[:, :2], boxes[:, :2] + boxes[:, 2:]
    raw[0, :, 4] = np.sort(rng.uniform(0, 0.2, 300))[::-1]
    raw[0, :k, 4] = rng.uniform(0.5, 0.9, k)
    raw[0, :, 5] = rng.integers(0, NC, 300)
    return 640, [raw]


def detr(rng, k):
    boxes = rng.uniform(0.2, 0.4, (1, 300, 4)).astype(np.float32)
    logits = rng.normal(-6, 1, (1, 300, NC + 1)).astype(np.float32)
    logits[0, :k, 1] = 3.0
    return 640, [boxes, logits]


def ssd(rng, k):
    boxes = np.sort(rng.uniform(0, 1, (1, 100, 4)).astype(np.float32), axis=-1)
    classes = rng.integers(0, 90, (1, 100)).astype(np.float32)
    scores = np.sort(rng.uniform(0, 1, (1, 100)).astype(np.float32))[:, ::-1].copy()
    return 320, [boxes, classes, scores, np.array([100], np.float32)]


def blazeface(rng, k):
    n = len(anchors_for(128, 128, 896))
    reg = rng.normal(0, 2, (1, n, 16)).astype(np.float32)
    reg[0, :, 2:4] = rng.uniform(10, 40, (n, 2))
    score = rng.normal(-8, 1, (1, n, 1)).astype(np.float32)
    for idx in clusters(rng, n, min(k, 5), per=10):
        score[0, idx, 0] = 3.0
    return 128, [reg, score]


def scrfd(rng, k):
    raw, size = [], 640
    for stride in (8, 16, 32):
        n = 2 * (size // stride) ** 2
        score = rng.uniform(0, 0.05, (n, 1)).astype(np.float32)
        score[rng.choice(n, 20 * k // 3, replace=False)] = 0.9
        raw.append(score)
    for stride in (8, 16, 32):
        n = 2 * (size // stride) ** 2
        raw.append(rng.uniform(1, 4, (n, 4)).astype(np.float32))
    for stride in (8, 16, 32):
        n = 2 * (size // stride) ** 2
        raw.append(rng.normal(0, 1, (n, 10)).astype(np.float32))
    return size, raw


CASES = {"yolov8": yolov8, "yolov5": yolov5, "yolox": yolox, "end2end": end2end,
         "detr": detr, "ssd": ssd, "blazeface": blazeface, "scrfd": scrfd}


def inference_ms(size: int, runs: int, threads: int, cache: dict) -> float:
    """Median inference of YoloLite exported to ONNX at ``size``."""
    if size in cache:
        return cache[size]
    import torch
    from edgekit.export.models.yolo_lite import YoloLite

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        torch.onnx.export(YoloLite(NC, imgsz=size).eval(), (torch.zeros(1, 3, size, size),),
                          str(path), opset_version=17, dynamo=False)
        backend = load_backend(path, Format.ONNX, options=BackendOptions(threads=threads))
        x = np.random.default_rng(0).random((1, 3, size, size), np.float32)
        for _ in range(5):
            backend.run([x])
        times = []
        for _ in range(max(10, runs // 10)):
            t0 = time.perf_counter()
            backend.run([x])
            times.append((time.perf_counter() - t0) * 1e3)
    cache[size] = statistics.median(times)
    return cache[size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--objects", type=int, default=10)
    args = parser.parse_args()
    cache: dict[int, float] = {}
    print(f"{'head':<10} {'input':>6} {'outputs':<34} {'kept':>5} {'decode+NMS':>11} "
          f"{'inference*':>11} {'ratio':>7}")
    for name, make in CASES.items():
        rng = np.random.default_rng(0)
        size, raw = make(rng, args.objects)
        infos = [TensorInfo(f"out{i}" if name != "detr" else ("dets", "logits")[i],
                            a.shape, a.dtype) for i, a in enumerate(raw)]
        cls = HEADS.load(name)
        spec = OutputSpec(kind=name, **cls.defaults)
        head = make_head(name, spec, InputSpec(shape=(1, 3, size, size)), infos)
        for _ in range(10):
            head.decode(raw, conf=spec.conf_threshold, iou=spec.iou_threshold)
        times, kept = [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            kept = len(head.decode(raw, conf=spec.conf_threshold, iou=spec.iou_threshold))
            times.append((time.perf_counter() - t0) * 1e3)
        decode = statistics.median(times)
        infer = inference_ms(size, args.runs, args.threads, cache)
        shapes = " ".join("x".join(map(str, a.shape)) for a in raw)[:34]
        print(f"{name:<10} {size:>6} {shapes:<34} {kept:>5} {decode:>9.3f}ms "
              f"{infer:>9.2f}ms {decode / infer:>7.1%}")
    print("* inference: YoloLite (447k parameters) as ONNX on onnxruntime CPU at that input "
          "size; real models of these families are heavier, so real ratios are lower.")


if __name__ == "__main__":
    main()
