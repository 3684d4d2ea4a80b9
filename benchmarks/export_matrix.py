"""The 3x3 export matrix of the sample model, measured: size, accuracy, latency, parity.

    python benchmarks/export_matrix.py [--out DIR] [--val-count 300] [--calib-count 200]
        [--threads 2] [--runs 200] [--json out.json]

1. Writes a validation set (``edgekit sample-data`` seed 12345) and a calibration set (seed
   4242, disjoint scenes), then times ONE ``export("sample", ..., formats=onnx,openvino,
   tflite, precisions=fp32,fp16,int8, calib=..., val=...)``: the whole export wall time,
   accuracy gate included.
2. Per artifact: file size (with OpenVINO's .bin), mAP@0.5:0.95 and its delta vs fp32 (from
   the gate, on the validation set), output agreement, gate verdict, and the median
   inference latency at ``--threads`` threads measured here apart from the gate: the
   backend alone on one preprocessed image, after warm-up, ``--runs`` calls.
3. Parity of every artifact with the torch model (max |diff| of the raw [1, 4 + nc, N]
   output on 4 preprocessed synthetic scenes; boxes are in pixels, so fp16/int8 differences
   of a few pixels on low-score anchors are expected and only fp32 is held to ~1e-3).

Close other CPU work first: latency on a shared 2-core machine moves with its load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
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
    parser.add_argument("--out", type=Path, default=None, help="bundle dir (default: temp)")
    parser.add_argument("--val-count", type=int, default=300)
    parser.add_argument("--calib-count", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from edgekit.export import ExportIncomplete, export

    with tempfile.TemporaryDirectory(prefix="edgekit-matrix-") as tmp:
        root = Path(tmp)
        write_dataset(root / "val", count=args.val_count, seed=12345)
        write_dataset(root / "calib", count=args.calib_count, seed=4242)
        out = args.out or root / "bundle"
        print(f"exporting sample: {len(FORMATS)} formats x {len(PRECISIONS)} precisions, "
              f"calib {args.calib_count} images, val {args.val_count} images", flush=True)
        start = time.perf_counter()
        failed = None
        try:
            bundle = export("sample", out, formats=FORMATS, precisions=PRECISIONS,
                            calib=root / "calib" / "images", val=root / "val",
                            max_drop=args.max_drop, threads=args.threads,
                            calib_count=args.calib_count,
                            progress=lambda line: print(f"  {line}", flush=True))
        except ExportIncomplete as exc:
            bundle, failed = exc.bundle, exc.message
        wall = time.perf_counter() - start
        rows = measure(bundle, threads=args.threads, runs=args.runs)
        report = json.loads((bundle.path / "export_report.json").read_text())
        result = {"export_wall_s": round(wall, 1), "threads": args.threads,
                  "val_images": args.val_count, "calib_images": args.calib_count,
                  "incomplete": failed, "artifacts": rows,
                  "attempts": {c["key"]: c["attempts"] for c in report["cells"]
                               if c.get("attempts")}}
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def measure(bundle: Bundle, *, threads: int, runs: int) -> list[dict]:
    from edgekit.export.gate import backend_options
    from edgekit.export.models.yolo_lite import build_sample_detector
    from edgekit.export.parity import sample_inputs

    spec = bundle.manifest.input
    inputs = sample_inputs(spec)
    torch_model = build_sample_detector(imgsz=spec.height)
    import torch

    with torch.no_grad():
        reference = [torch_model(torch.from_numpy(x)).numpy() for x in inputs]
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
    print(f"\nsample model, {result['val_images']} validation images, "
          f"{result['threads']} threads; whole 3x3 export: {result['export_wall_s']} s")
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
