"""Is edgekit's harness honest? Its p50 against each runtime's own plain loop and benchmark_app.

Same model, same threads (2), same precision (f32) for all:

- edgekit ``bench`` on onnxruntime vs a plain ``session.run`` loop;
- edgekit ``bench`` on OpenVINO vs a plain ``infer_request.infer`` loop vs OpenVINO's own
  ``benchmark_app -hint none -nthreads 2 -infer_precision f32 -api sync``.

The model is the shipped sample bundle's ONNX when it exists, else a random-init YoloLite at
320 exported to ONNX (random weights: fine for speed, meaningless for accuracy). Run it on a
quiet machine: it prints the medians and the ratios (1.00 = same figure; aim within 5%).

    nice -n 15 .venv/bin/python benchmarks/bench_honesty.py [--runs 300]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2


def model_path(work: Path) -> Path:
    sample = ROOT / "edgekit" / "sample" / "bundle"
    if (sample / "edgekit.json").is_file():
        from edgekit.bundle import Bundle

        bundle = Bundle.load(sample)
        return bundle.file(bundle.select(format="onnx", precision="fp32"))
    import torch
    from edgekit.export.models.yolo_lite import YoloLite

    torch.manual_seed(0)
    model = YoloLite(num_classes=7, imgsz=320).eval()
    path = work / "yolo_lite_320.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 320, 320), str(path), dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["output0"])
    return path


def plain_ort(path: Path, runs: int, warmup: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(samples))


def plain_openvino(path: Path, runs: int, warmup: int) -> float:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    for _ in range(warmup):
        request.infer({0: x})
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        request.infer({0: x})
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(samples))


def benchmark_app(path: Path, runs: int) -> float:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    out = subprocess.run(
        [exe, "-m", str(path), "-d", "CPU", "-hint", "none", "-nthreads", str(THREADS),
         "-infer_precision", "f32", "-api", "sync", "-niter", str(runs)],
        capture_output=True, text=True, check=True).stdout
    match = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    if not match:
        raise RuntimeError(f"benchmark_app printed no median:\n{out[-2000:]}")
    return float(match.group(1))


def edgekit_p50(path: Path, backend: str, runs: int, warmup: int) -> tuple[float, str, str]:
    from edgekit.backends import BackendOptions
    from edgekit.bench import BenchSettings
    from edgekit.bench.harness import Context, bench_file

    options = BackendOptions(threads=THREADS, extra={"precision": "fp32"} if backend ==
                             "openvino" else {})
    result = bench_file(path, settings=BenchSettings(runs=runs, warmup=warmup),
                        context=Context(board="cpu-x86_64", detected_board=None, cpu_model=""),
                        backend=backend, options=options)
    return result.latency_ms["p50"], result.executed_on, result.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(Path(tmp))
        print(f"model: {path.name}, threads {THREADS}, fp32/f32, {args.runs} runs each")
        ek_ort, on, prec = edgekit_p50(path, "onnxruntime", args.runs, args.warmup)
        ort_plain = plain_ort(path, args.runs, args.warmup)
        ek_ov, ov_on, ov_prec = edgekit_p50(path, "openvino", args.runs, args.warmup)
        ov_plain = plain_openvino(path, args.runs, args.warmup)
        ov_app = benchmark_app(path, args.runs)
    print(f"onnxruntime  edgekit p50 {ek_ort:7.3f} ms ({on}, {prec}) | plain session.run "
          f"{ort_plain:7.3f} ms | ratio {ek_ort / ort_plain:.3f}")
    print(f"OpenVINO     edgekit p50 {ek_ov:7.3f} ms ({ov_on}, {ov_prec}) | plain infer "
          f"{ov_plain:7.3f} ms | ratio {ek_ov / ov_plain:.3f}")
    print(f"OpenVINO     edgekit p50 {ek_ov:7.3f} ms | benchmark_app median {ov_app:7.3f} ms "
          f"| ratio {ek_ov / ov_app:.3f}")


if __name__ == "__main__":
    main()
