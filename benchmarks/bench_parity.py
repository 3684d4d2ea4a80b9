"""Does `edgekit bench` report what the runtimes' own tools report? p50 ratios, interleaved.

A shipped model (``--model sample|reference``) is exported (`edgekit export MODEL --to
onnx,openvino`) into a temp dir; then, in
``--rounds`` interleaved rounds (the machine is shared and noisy, so both tools see the same
load), each round measures:

- OpenVINO IR: edgekit's harness (``bench_file``, the code behind `edgekit bench`) vs
  ``benchmark_app -hint none -nstreams 1 -nthreads N -api sync -infer_precision f32``
  (f32 set explicitly on both sides: this CPU otherwise runs fp32 in bf16);
- ONNX on onnxruntime: edgekit vs ``onnxruntime_perf_test`` when it is on PATH (the pip wheel
  does not ship it), else vs a plain ``session.run`` loop, labelled as such.

It prints every round and then the median of the per-round ratios (aim 0.98-1.02), the load
average, and the Python overhead: edgekit's p50 minus the runtime's own C++ timing of the
same calls (OpenVINO ``InferRequest.latency``, paired call by call) and minus benchmark_app.

    nice -n 10 .venv/bin/python benchmarks/bench_parity.py [--model sample|reference] [--rounds 7]
        [--runs 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def export_model(model: str, out: Path) -> tuple[Path, Path]:
    """fp32 ONNX and IR of a shipped model (`edgekit export MODEL --to onnx,openvino`)."""
    subprocess.run([str(BIN / "edgekit"), "export", model, "-o", str(out),
                    "--to", "onnx,openvino"], check=True, capture_output=True, text=True)
    return out / "model.onnx", next(out.glob("*.xml"))


def edgekit_p50(path: Path, backend: str, threads: int, runs: int) -> tuple[float, str, float]:
    """(p50 ms, precision that ran, per-call Python overhead on OpenVINO in ms, else nan)."""
    from edgekit.backends import BackendOptions
    from edgekit.bench import BenchSettings
    from edgekit.bench.harness import Context, bench_file, load_model_file, random_inputs

    extra = {"precision": "fp32"} if backend == "openvino" else {}
    options = BackendOptions(threads=threads, extra=extra)
    settings = BenchSettings(runs=runs, warmup=20)
    context = Context(board="cpu-x86_64", detected_board=None, cpu_model="")
    result = bench_file(path, settings=settings, context=context, backend=backend,
                        options=options)
    overhead_ms = float("nan")
    if backend == "openvino":
        # The same calls again, each timed as the harness does AND by the runtime's own C++
        # clock (InferRequest.latency): the per-call difference is edgekit's Python overhead,
        # paired call by call so the machine's load cancels out.
        loaded = load_model_file(path, backend=backend, options=options)
        inputs = random_inputs(loaded.inputs, {}, seed=0)
        gaps = []
        for i in range(runs + 20):
            t0 = time.perf_counter_ns()
            loaded.run(inputs)
            wall = (time.perf_counter_ns() - t0) / 1e6
            if i >= 20:
                gaps.append(wall - loaded.request.latency)
        overhead_ms = float(np.median(gaps))
    return result.latency_ms["p50"], result.precision, overhead_ms


def benchmark_app(xml: Path, threads: int, runs: int) -> float:
    exe = shutil.which("benchmark_app") or str(BIN / "benchmark_app")
    out = subprocess.run(
        [exe, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads",
         str(threads), "-infer_precision", "f32", "-api", "sync", "-niter", str(runs)],
        capture_output=True, text=True, check=True).stdout
    match = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    if not match:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-2000:]}")
    return float(match.group(1))


def ort_reference(onnx: Path, threads: int, runs: int) -> tuple[float, str]:
    """onnxruntime_perf_test's median when installed, else a plain session.run loop's."""
    perf_test = shutil.which("onnxruntime_perf_test")
    if perf_test:
        out = subprocess.run([perf_test, "-e", "cpu", "-m", "times", "-r", str(runs), "-x",
                              str(threads), "-y", "1", "-I", str(onnx)],
                             capture_output=True, text=True, check=True).stdout
        match = re.search(r"P50 Latency:\s+([\d.]+)\s*s", out)
        if match:
            return float(match.group(1)) * 1e3, "onnxruntime_perf_test"
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
    info = session.get_inputs()[0]
    x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in info.shape],
                                        dtype=np.float32)
    feed = {info.name: x}
    for _ in range(20):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(samples)), "plain session.run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample",
                        help="shipped model: sample (320) or reference (YOLOv8n-class, 640)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ov_ratios, ort_ratios, overhead_rt, overhead_app = [], [], [], []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="edgekit-parity-") as tmp:
        onnx, xml = export_model(args.model, Path(tmp) / args.model)
        print(f"{args.model} IR {xml.name} + {onnx.name}; threads {args.threads}, f32, sync, "
              f"1 stream, {args.runs} runs x {args.rounds} interleaved rounds")
        ort_name = "?"
        for r in range(args.rounds):
            # Alternate which tool goes first, so a load ramp does not favour one side.
            if r % 2 == 0:
                app = benchmark_app(xml, args.threads, args.runs)
                ek_ov, prec, own = edgekit_p50(xml, "openvino", args.threads, args.runs)
            else:
                ek_ov, prec, own = edgekit_p50(xml, "openvino", args.threads, args.runs)
                app = benchmark_app(xml, args.threads, args.runs)
            if r % 2 == 0:
                ref, ort_name = ort_reference(onnx, args.threads, args.runs)
                ek_ort = edgekit_p50(onnx, "onnxruntime", args.threads, args.runs)[0]
            else:
                ek_ort = edgekit_p50(onnx, "onnxruntime", args.threads, args.runs)[0]
                ref, ort_name = ort_reference(onnx, args.threads, args.runs)
            ov_ratios.append(ek_ov / app)
            ort_ratios.append(ek_ort / ref)
            overhead_rt.append(own)
            overhead_app.append(ek_ov - app)
            print(f"round {r + 1}: OpenVINO edgekit {ek_ov:7.3f} ms ({prec}) | benchmark_app "
                  f"{app:7.3f} | ratio {ek_ov / app:.3f} | Python overhead {own:6.3f}"
                  f" || onnxruntime edgekit {ek_ort:7.3f} | {ort_name} {ref:7.3f} | ratio "
                  f"{ek_ort / ref:.3f} | load {os.getloadavg()[0]:.2f}", flush=True)
    med = statistics.median
    print(f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"(1-min; {os.cpu_count()} CPUs)")
    print(f"OpenVINO    edgekit / benchmark_app p50: median ratio {med(ov_ratios):.3f} "
          f"(rounds: {min(ov_ratios):.3f}-{max(ov_ratios):.3f})")
    print(f"onnxruntime edgekit / {ort_name} p50: median ratio {med(ort_ratios):.3f} "
          f"(rounds: {min(ort_ratios):.3f}-{max(ort_ratios):.3f})")
    print(f"Python overhead (OpenVINO), per call: wall time - the runtime's own latency, "
          f"median {med(overhead_rt):.3f} ms; edgekit p50 - benchmark_app p50, median "
          f"{med(overhead_app):+.3f} ms")


if __name__ == "__main__":
    main()
