"""Where INT8 time goes, per op type: fp32 vs int8 of one bundle, on onnxruntime and OpenVINO.

    python benchmarks/int8_op_profile.py BUNDLE [--threads 2] [--runs 50] [--top 12]

Issue 16 asks INT8 to be >= 1.5x fp32 on onnxruntime CPU and >= 2x on OpenVINO CPU, and,
where a runtime's kernels cannot, the per-op profile that says why. For each runtime this
runs the bundle's fp32 and int8 artifacts ``--runs`` times on one preprocessed synthetic
scene and sums the time per op type per run:

- onnxruntime: its own profiler (``enable_profiling``; the ``kernel_time`` events, named by op
  type: QLinearConv, QLinearSigmoid, DequantizeLinear, ...);
- OpenVINO: ``PERF_COUNT`` (each executed layer's real time, named by its executed type,
  e.g. ``Convolution`` / ``Subgraph``, and its kernel, e.g. ``brgconv_avx512_core_vnni_I8``),
  at f32 as the gate measures.

It prints each op type's ms per run for fp32 and int8 and the median end-to-end latency of
each, with the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    from edgekit.export.parity import sample_inputs

    from edgekit.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    x = sample_inputs(bundle.manifest.input)[0]
    print(f"{bundle.path}: load average {os.getloadavg()[0]:.2f}, {args.threads} threads, "
          f"{args.runs} runs")
    for fmt, profile in (("onnx", profile_ort), ("openvino", profile_ov)):
        results = {}
        for precision in ("fp32", "int8"):
            try:
                artifact = bundle.select(format=fmt, precision=precision)
            except Exception:  # not in the bundle
                continue
            results[precision] = profile(bundle.file(artifact), x, threads=args.threads,
                                         runs=args.runs)
        if len(results) == 2:
            print_profile(fmt, results, top=args.top)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


def profile_ort(path: Path, x: np.ndarray, *, threads: int, runs: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    latency = _latency(ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"]), x, runs)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / runs  # us -> ms per run
    return {"latency_ms": latency, "per_op": dict(per_op)}


def profile_ov(path: Path, x: np.ndarray, *, threads: int, runs: int) -> dict:
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
              "NUM_STREAMS": 1, "PERF_COUNT": True}
    compiled = core.compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    per_op: dict[str, float] = collections.defaultdict(float)
    times = []
    for i in range(runs + 5):
        start = time.perf_counter()
        request.infer({0: x})
        if i >= 5:
            times.append((time.perf_counter() - start) * 1e3)
            for info in request.profiling_info:
                if info.status == info.Status.EXECUTED:
                    key = f"{info.exec_type} ({info.node_type})"
                    per_op[key] += info.real_time.total_seconds() * 1e3 / runs
    return {"latency_ms": statistics.median(times), "per_op": dict(per_op)}


def _latency(session, x: np.ndarray, runs: int) -> float:
    name = session.get_inputs()[0].name
    for _ in range(5):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def print_profile(fmt: str, results: dict, *, top: int) -> None:
    fp32, int8 = results["fp32"], results["int8"]
    speedup = fp32["latency_ms"] / int8["latency_ms"]
    print(f"\n{fmt}: fp32 {fp32['latency_ms']:.2f} ms, int8 {int8['latency_ms']:.2f} ms median "
          f"-> int8 speed-up {speedup:.2f}x")
    for precision in ("fp32", "int8"):
        ops = sorted(results[precision]["per_op"].items(), key=lambda kv: -kv[1])
        total = sum(v for _, v in ops)
        print(f"  {precision}: ms per run by op type (sum {total:.2f} ms)")
        for name, ms in ops[:top]:
            print(f"    {name:<60} {ms:7.2f} ms  {100 * ms / total:5.1f}%")


if __name__ == "__main__":
    sys.exit(main())
