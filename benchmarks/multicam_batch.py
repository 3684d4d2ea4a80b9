"""Many cameras, one inference call: batch scaling, 4 cameras batched vs 4 pipelines, GPU on paper.

    python benchmarks/multicam_batch.py [--model sample] [--threads 2] [--rounds 3]
        [--frames 150] [--json out.json]

1. Batch scaling: the model exported with a dynamic batch (``export --batch dynamic``), run
   on onnxruntime and OpenVINO CPU at N = 1, 2, 4, 8 images per call; median ms per call and
   per image (rounds interleaved over N and runtimes: the machine is shared).
2. Total fps of 4 cameras (4 video files, 640x480): one pipeline whose cameras share a
   batched call per tick, against 4 separate pipelines (each its own Detector) running at
   once; alternating rounds, median of the round ratios. Load average printed with each.
3. The expected GPU gain ON PAPER (not measured: no GPU here): t(N) = a + b*N fitted to the
   measured CPU figures splits a call into a fixed part a and a per-image part b; a GPU
   shrinks b by its compute (MACs counted in the graph / an assumed sustained rate) while its
   fixed part is kernel launches (graph nodes x an assumed launch cost) plus the host's own
   per-call cost, measured here as one onnxruntime call of a one-node graph on the same
   input (binding, copies, Python). The assumptions are printed beside the result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edgekit.backends import BackendOptions
from edgekit.detector import Detector
from edgekit.pipeline import Pipeline, StagedModel, staged

SIZES = (1, 2, 4, 8)
CAMERAS = 4
# On-paper GPU assumptions (a Jetson Orin Nano-class GPU running fp16 through TensorRT):
GPU_MACS_PER_S = 2.0e12  # sustained: ~20 % of its ~10 TFLOPS fp16 dense peak on small convs
GPU_LAUNCH_S = 6e-6  # per kernel launch (CUDA's documented order of magnitude: 5-10 us)
GPU_FUSION = 0.5  # TensorRT fuses conv+bias+activation: about half the graph's nodes launch


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def export_dynamic(model: str, out: Path) -> Path:
    from edgekit.export import export

    export(model, out, formats=("onnx", "openvino"), batch="dynamic")
    return out


def scaling(bundle: Path, threads: int, rounds: int, runs: int) -> dict[str, dict[int, float]]:
    from edgekit.preprocess import preprocess

    runtimes = {fmt: Detector.open(bundle, format=fmt,
                                   options=BackendOptions(threads=threads))
                for fmt in ("onnx", "openvino")}
    spec = next(iter(runtimes.values())).manifest.input
    from edgekit.data.synth import render_scene

    images = [render_scene(np.random.default_rng([5, i]))[0] for i in range(max(SIZES))]
    tensors = np.concatenate([preprocess(image, spec)[0] for image in images])
    samples: dict[str, dict[int, list[float]]] = {f: {n: [] for n in SIZES} for f in runtimes}
    for detector in runtimes.values():  # warm-up: first calls at each shape allocate
        for n in SIZES:
            for _ in range(3):
                detector.backend.run([tensors[:n]])
    for _ in range(rounds):
        for n in SIZES:
            for fmt, detector in runtimes.items():
                batch = np.ascontiguousarray(tensors[:n])
                for _ in range(runs):
                    t0 = time.perf_counter()
                    detector.backend.run([batch])
                    samples[fmt][n].append((time.perf_counter() - t0) * 1e3)
    return {fmt: {n: statistics.median(v) for n, v in per.items()}
            for fmt, per in samples.items()}


def make_videos(folder: Path, frames: int) -> list[Path]:
    import cv2

    from edgekit.sources.testsrc import SceneGenerator

    paths = []
    for cam in range(CAMERAS):
        scene = SceneGenerator(width=640, height=480, seed=20 + cam, objects=2 + cam)
        path = folder / f"cam{cam}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
        for i in range(frames):
            writer.write(scene.render(i))
        writer.release()
        paths.append(path)
    return paths


def _model(bundle: Path, threads: int, batch: int) -> StagedModel:
    detector = Detector.open(bundle, format="onnx", options=BackendOptions(threads=threads))
    model = staged(detector)
    model.batch = batch  # 4: one frame per camera per call; 1: a pipeline without batching
    return model


def batched(bundle: Path, videos: list[Path], threads: int) -> dict:
    model = _model(bundle, threads, CAMERAS)
    t0 = time.perf_counter()
    summary = Pipeline(model, [str(v) for v in videos]).run()
    wall = time.perf_counter() - t0
    return {"fps": summary["frames_out"] / wall, "frames": summary["frames_out"],
            "batch_sizes": summary["batch_sizes"]}


def separate(bundle: Path, videos: list[Path], threads: int) -> dict:
    detectors = [_model(bundle, threads, 1) for _ in videos]
    frames = [0] * len(videos)

    def one(i: int) -> None:
        frames[i] = Pipeline(detectors[i], [str(videos[i])]).run()["frames_out"]

    workers = [threading.Thread(target=one, args=(i,)) for i in range(len(videos))]
    t0 = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - t0
    return {"fps": sum(frames) / wall, "frames": sum(frames)}


def fit(latency: dict[int, float]) -> tuple[float, float]:
    """Least-squares t(N) = a + b*N: a fixed per call, b per image (ms)."""
    n = np.array(list(latency), float)
    t = np.array(list(latency.values()), float)
    b, a = np.polyfit(n, t, 1)
    return float(a), float(b)


def host_call_ms(spec, threads: int, runs: int = 200) -> float:
    """Median ms of one onnxruntime call on a one-node graph (ReduceMean) taking the model's
    input: what a call costs the host besides the model's own compute."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["out"], keepdims=0)], "host",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(spec.shape))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    x = np.zeros(spec.shape, np.float32)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {"images": x})
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def on_paper(bundle: Path, scaling_ms: dict[int, float], host_ms: float) -> dict:
    import onnx
    from edgekit.export.batch import pin_onnx

    from edgekit.bench.flops import count_flops

    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.onnx"
        one.write_bytes((bundle / "model.onnx").read_bytes())
        pin_onnx(one, 1)  # MACs of one image
        macs = count_flops(one)["macs"]
        nodes = len(onnx.load(str(one)).graph.node)
    a_cpu, b_cpu = fit(scaling_ms)
    # The GPU call: the host's per-call cost measured here + kernel launches; per image: the
    # MACs at the assumed rate.
    a_gpu = host_ms + nodes * GPU_FUSION * GPU_LAUNCH_S * 1e3
    b_gpu = macs / GPU_MACS_PER_S * 1e3
    per_call = {n: a_gpu + b_gpu * n for n in SIZES}
    return {"macs": macs, "nodes": nodes, "host_call_ms": host_ms, "cpu_fixed_ms": a_cpu,
            "cpu_per_image_ms": b_cpu,
            "gpu_fixed_ms": a_gpu, "gpu_per_image_ms": b_gpu, "gpu_call_ms": per_call,
            "gpu_gain_4": CAMERAS * per_call[1] / per_call[CAMERAS],
            "assumptions": {"gpu_macs_per_s": GPU_MACS_PER_S, "launch_s": GPU_LAUNCH_S,
                            "launching_fraction_of_nodes": GPU_FUSION}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="calls per N per round")
    parser.add_argument("--frames", type=int, default=150, help="frames per camera video")
    parser.add_argument("--separate-threads", type=int, default=None,
                        help="threads of each separate pipeline (default --threads); "
                             "--threads 4 --separate-threads 1 gives both sides 4 in all")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bundle = export_dynamic(args.model, Path(tmp) / "bundle")
        print(f"model {args.model}, dynamic batch, {os.cpu_count()} CPUs, {args.threads} "
              f"threads per runtime; load average {load()}")
        scale = ({} if args.skip_scaling else
                 scaling(bundle, args.threads, args.rounds, args.runs))
        print("\n1. batch scaling (median ms per call / per image; images/s)")
        for fmt, per in scale.items():
            for n, ms in per.items():
                print(f"   {fmt:9s} N={n}: {ms:8.2f} ms/call  {ms / n:7.2f} ms/image  "
                      f"{1000 * n / ms:7.1f} img/s  (x{per[1] * n / ms:.2f} vs N=1)")
        print(f"   load average after: {load()}")

        videos = make_videos(Path(tmp), args.frames)
        rounds = []
        for _ in range(args.rounds):
            one = batched(bundle, videos, args.threads)
            many = separate(bundle, videos, args.separate_threads or args.threads)
            rounds.append((one, many, one["fps"] / many["fps"], load()))
            print(f"   round: batched {one['fps']:.1f} fps (calls by size "
                  f"{one['batch_sizes']}), separate {many['fps']:.1f} fps, load {rounds[-1][3]}")
        one, many, ratio, _ = sorted(rounds, key=lambda r: r[2])[len(rounds) // 2]
        print(f"\n2. {CAMERAS} cameras x {args.frames} frames of 640x480 (onnxruntime): one "
              f"pipeline, batched per tick: {one['fps']:.1f} fps total; {CAMERAS} separate "
              f"pipelines ({args.separate_threads or args.threads} threads each): "
              f"{many['fps']:.1f} fps total -> x{ratio:.2f} (median of "
              f"{len(rounds)} rounds: {[round(r[2], 2) for r in rounds]})")

        if not scale:
            return
        spec = Detector.open(bundle, format="onnx").manifest.input
        paper = on_paper(bundle, scale["onnx"], host_call_ms(spec, args.threads))
        print("\n3. GPU gain ON PAPER (no GPU here; assumptions below, not a measurement)")
        print(f"   measured CPU (onnxruntime): t(N) = {paper['cpu_fixed_ms']:.2f} ms + "
              f"{paper['cpu_per_image_ms']:.2f} ms x N")
        print(f"   graph: {paper['macs'] / 1e9:.2f} GMAC per image, {paper['nodes']} nodes; "
              f"host cost of one call (one-node graph, same input): "
              f"{paper['host_call_ms']:.3f} ms")
        print(f"   assumed GPU: {GPU_MACS_PER_S / 1e12:.1f} TMAC/s sustained, "
              f"{GPU_LAUNCH_S * 1e6:.0f} us per launch, {GPU_FUSION:.0%} of nodes launch")
        print(f"   -> GPU t(N) = {paper['gpu_fixed_ms']:.2f} ms + "
              f"{paper['gpu_per_image_ms']:.3f} ms x N; 4 cameras batched vs 4 calls: "
              f"x{paper['gpu_gain_4']:.2f} (CPU measured: "
              f"x{scale['onnx'][1] * CAMERAS / scale['onnx'][CAMERAS]:.2f})")
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"scaling_ms": scale, "cameras": {"batched": one, "separate": many,
                                                  "ratio": ratio,
                                                  "round_ratios": [r[2] for r in rounds]},
                 "gpu_on_paper": paper}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
