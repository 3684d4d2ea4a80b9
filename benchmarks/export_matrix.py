"""The 3x3 export matrix of a model, measured: size, accuracy, latency, parity, memory.

    python benchmarks/export_matrix.py [--model sample] [--weights W] [--imgsz 640]
        [--out DIR] [--val-count 300] [--calib-count 200] [--threads 2] [--runs 200]
        [--time-budget 600] [--formats onnx,openvino,tflite] [--json out.json]

1. Writes a validation set (``edgekit sample-data`` seed 12345) and a calibration set (seed
   4242, disjoint scenes), then times ONE ``export(MODEL, ..., formats=onnx,openvino,
   tflite, precisions=fp32,fp16,int8, calib=..., val=...)``: the whole export wall time,
   accuracy gate included, and its peak memory: the resident set of the process and its
   children summed, sampled every 0.2 s (psutil), beside the kernel's own high-water marks
   (``getrusage`` ru_maxrss of this process and of its largest waited-for child).
2. Per artifact: file size (with OpenVINO's .bin), mAP@0.5:0.95 and its delta vs fp32 (from
   the gate, on the validation set), output agreement, gate verdict, and the median
   inference latency at ``--threads`` threads measured here apart from the gate: the
   backend alone on one preprocessed image, after warm-up, ``--runs`` calls.
3. Parity of every artifact with the torch model (max |diff| of the raw [1, 4 + nc, N]
   output on 4 preprocessed synthetic scenes; boxes are in pixels, so fp16/int8 differences
   of a few pixels on low-score anchors are expected and only fp32 is held to ~1e-3).

Close other CPU work first: latency on a shared 2-core machine moves with its load, so the
load average is printed before the export, after it and after the latency runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edgekit.backends import load_backend
from edgekit.bundle import Bundle
from edgekit.data.synth import write_dataset

FORMATS = ("onnx", "openvino", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample",
                        help="what `edgekit export` takes: sample, a file, pkg.mod:factory")
    parser.add_argument("--weights", default=None, help="weights for a factory model")
    parser.add_argument("--imgsz", type=int, default=None, help="default: the model's own")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--time-budget", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=None, help="bundle dir (default: temp)")
    parser.add_argument("--val-count", type=int, default=300)
    parser.add_argument("--calib-count", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the datasets' temporary directory goes too (the export
    # itself handles the signal while it runs).
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

    from edgekit.export import ExportIncomplete, export

    formats = tuple(f for f in args.formats.split(",") if f)
    with tempfile.TemporaryDirectory(prefix="edgekit-matrix-") as tmp:
        root = Path(tmp)
        write_dataset(root / "val", count=args.val_count, seed=12345)
        write_dataset(root / "calib", count=args.calib_count, seed=4242)
        out = args.out or root / "bundle"
        print(f"exporting {args.model}: {len(formats)} formats x {len(PRECISIONS)} precisions, "
              f"calib {args.calib_count} images, val {args.val_count} images", flush=True)
        load_before = os.getloadavg()
        start = time.perf_counter()
        failed = None
        with PeakMemory() as memory:
            try:
                bundle = export(args.model, out, formats=formats, precisions=PRECISIONS,
                                calib=root / "calib" / "images", val=root / "val",
                                max_drop=args.max_drop, threads=args.threads,
                                calib_count=args.calib_count, imgsz=args.imgsz,
                                weights=args.weights, time_budget=args.time_budget or None,
                                progress=lambda line: print(f"  {line}", flush=True))
            except ExportIncomplete as exc:
                bundle, failed = exc.bundle, exc.message
        wall = time.perf_counter() - start
        load_export = os.getloadavg()
        rows = measure(bundle, model=args.model, weights=args.weights, threads=args.threads,
                       runs=args.runs)
        report = json.loads((bundle.path / "export_report.json").read_text())
        result = {"model": args.model, "imgsz": bundle.manifest.input.height,
                  "export_wall_s": round(wall, 1), "threads": args.threads,
                  "time_budget_s": args.time_budget,
                  "val_images": args.val_count, "calib_images": args.calib_count,
                  "peak_memory": memory.figures(),
                  "load_average": {"before_export": load_before, "after_export": load_export,
                                   "after_latency": os.getloadavg()},
                  "incomplete": failed, "artifacts": rows,
                  "attempts": {c["key"]: c["attempts"] for c in report["cells"]
                               if c.get("attempts")}}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


class PeakMemory:
    """Peak resident memory of this process and its children while the block runs.

    Sampled (psutil, every 0.2 s: the sum over the process tree, what the OOM killer
    weighs) and the kernel's exact high-water marks (``ru_maxrss``: this process; the
    largest child waited for), in GB.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self) -> PeakMemory:
        import psutil

        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self._process, *self._process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # a child that just ended
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        kib = 1024  # ru_maxrss is in KiB on Linux
        return {"tree_sampled_gb": round(self.peak / 1e9, 3),
                "self_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        * kib / 1e9, 3),
                "children_maxrss_gb": round(resource.getrusage(
                    resource.RUSAGE_CHILDREN).ru_maxrss * kib / 1e9, 3)}


def measure(bundle: Bundle, *, model: str, weights: str | None, threads: int,
            runs: int) -> list[dict]:
    from edgekit.export import load_model
    from edgekit.export.gate import backend_options
    from edgekit.export.parity import sample_inputs

    spec = bundle.manifest.input
    inputs = sample_inputs(spec)
    loaded = load_model(model, weights=weights, imgsz=spec.height)
    if loaded.module is not None:
        import torch

        with torch.no_grad():
            reference = [loaded.module(torch.from_numpy(x)).numpy() for x in inputs]
    else:  # an ONNX source: its own fp32 file is the reference
        fp32 = bundle.select(format="onnx", precision="fp32")
        backend = load_backend(bundle.file(fp32), fp32.format,
                               options=backend_options(bundle, fp32, threads=threads))
        reference = [np.asarray(backend.run([x])[0], np.float32) for x in inputs]
    del loaded
    rows = []
    for artifact in bundle.manifest.artifacts:
        backend = load_backend(bundle.file(artifact), artifact.format,
                               options=backend_options(bundle, artifact, threads=threads))
        outputs = [np.asarray(backend.run([x])[0], np.float32) for x in inputs]
        parity = max(float(np.max(np.abs(o - r))) for o, r in zip(outputs, reference,
                                                                   strict=True))
        for _ in range(20):
            backend.run([inputs[0]])
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            backend.run([inputs[0]])
            times.append((time.perf_counter() - t0) * 1e3)
        acc = artifact.accuracy or {}
        size = artifact.size + sum((bundle.path / name).stat().st_size
                                   for name in artifact.details.get("companions", {}))
        rows.append({
            "format": artifact.format.value, "precision": artifact.precision.value,
            "size_mb": round(size / 1e6, 3),
            "map50_95": None if acc.get("map50_95") is None else round(100 * acc["map50_95"], 2),
            "delta": acc.get("delta_map50_95"), "agreement": acc.get("agreement"),
            "gate": acc.get("gate"), "fallback": acc.get("fallback"),
            "scheme": artifact.details.get("scheme"),
            "latency_ms_median": round(statistics.median(times), 2),
            "executed_on": backend.executed_on,
            "parity_vs_torch_max_abs": float(f"{parity:.3g}"),
        })
    return rows


def print_table(result: dict) -> None:
    rows = result["artifacts"]
    by_key = {(r["format"], r["precision"]): r for r in rows}
    memory, load = result["peak_memory"], result["load_average"]
    print(f"\n{result['model']} at {result['imgsz']}, {result['val_images']} validation images, "
          f"{result['threads']} threads; whole export: {result['export_wall_s']} s "
          f"(time budget {result['time_budget_s']} s)")
    print(f"peak memory of the export: {memory['tree_sampled_gb']:.2f} GB (process tree, "
          f"sampled); ru_maxrss {memory['self_maxrss_gb']:.2f} GB this process, "
          f"{memory['children_maxrss_gb']:.2f} GB largest child")
    print("load average (1/5/15 min): before export "
          + ", after export ".join("/".join(f"{v:.2f}" for v in load[k])
                                   for k in ("before_export", "after_export"))
          + ", after latency runs " + "/".join(f"{v:.2f}" for v in load["after_latency"]))
    print("| format | precision | size MB | mAP@0.5:0.95 | Δ vs fp32 | agreement | gate | "
          "median ms | speed-up vs fp32 | parity vs torch (max abs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = by_key.get((r["format"], "fp32"))
        speedup = (f"{base['latency_ms_median'] / r['latency_ms_median']:.2f}x"
                   if base else "-")
        print(f"| {r['format']} | {r['precision']} | {r['size_mb']:.2f} | {r['map50_95']} | "
              f"{r['delta']} | {r['agreement']} | {r['gate']}"
              f"{' (' + r['fallback'] + ')' if r['fallback'] else ''} | "
              f"{r['latency_ms_median']:.2f} | {speedup} | {r['parity_vs_torch_max_abs']:.3g} |")
    if result.get("attempts"):
        # What each fallback bought and cost: the gate's own figures (mAP on the validation
        # set, median latency while evaluating), first export included.
        print("\nartifacts that needed a fallback, every version measured:")
        print("| artifact | version | Δ vs fp32 | gate | median ms (gate) |")
        print("|---|---|---|---|---|")
        for key, attempts in result["attempts"].items():
            for a in attempts:
                print(f"| {key} | {a['name']} | {a.get('delta_map50_95')} | "
                      f"{a.get('gate', 'error: ' + str(a.get('error')))} | "
                      f"{a.get('latency_ms_median')} |")
    if result["incomplete"]:
        print(f"\nINCOMPLETE: {result['incomplete']}")


if __name__ == "__main__":
    sys.exit(main())
