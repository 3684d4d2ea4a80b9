"""A user's ONNX file to TFLite fp32/fp16/int8: wall time, and INT8 accuracy with and
without the float decode tail.

    python benchmarks/onnx_to_tflite.py [--val-count 300] [--calib-count 200] [--json F]

1. Exports the sample detector (YOLOv8 convention: pixel boxes and sigmoid scores in one
   [1, 11, 2100] output) to ONNX at 320, as a user's file would come, and writes a
   validation set (``edgekit sample-data`` seed 12345) and a calibration set (seed 4242).
2. Times ONE ``export(model.onnx, formats=tflite, precisions=fp32,fp16,int8, val, calib)``
   from that file, not the torch module: onnx2torch rebuilds a torch module, litert-torch
   converts it once, fp16/int8 derive from that float file, and the gate measures each
   (fallbacks included). Prints the per-cell seconds, mAP@0.5:0.95, delta vs the fp32 ONNX
   reference, the fallback the gate took, and the nodes the static INT8 file kept float.
3. "Before": the same static INT8 conversion with the whole graph int8 (no float tail: one
   int8 tensor holds 0..320 pixel boxes with 0..1 scores, the trap of shared/TOOLCHAIN.md),
   measured on the same validation set by the same gate code. The issue's own "before",
   onnx2tf (64 min per run, 0.00 mAP at INT8 on a real YOLOv8), needs TensorFlow, which
   this machine does not have: it is not re-measured here.

Close other CPU work first: times on a shared 2-core machine move with its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edgekit.bundle import MANIFEST, Bundle, Precision, sha256_file
from edgekit.data.synth import write_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val-count", type=int, default=300)
    parser.add_argument("--calib-count", type=int, default=200)
    parser.add_argument("--max-drop", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from edgekit.export import ExportIncomplete, export

    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-tflite-") as tmp:
        root = Path(tmp)
        write_dataset(root / "val", count=args.val_count, seed=12345)
        write_dataset(root / "calib", count=args.calib_count, seed=4242)
        source = export("sample", root / "onnx", formats=("onnx",)).path / "model.onnx"
        print(f"ONNX file: {source} ({source.stat().st_size / 1e6:.2f} MB); val "
              f"{args.val_count}, calib {args.calib_count} scenes", flush=True)
        out = root / "bundle"
        start = time.perf_counter()
        try:
            export(str(source), out, formats=("tflite",), precisions=("fp32", "fp16", "int8"),
                   val=str(root / "val"), calib=str(root / "calib"), max_drop=args.max_drop,
                   progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        except ExportIncomplete as exc:
            print(f"export incomplete: {exc.message}")
        wall = time.perf_counter() - start
        report = json.loads((out / "export_report.json").read_text())
        before = _whole_graph_int8(source, out, root)
        result = {"onnx_to_tflite_3_precisions_wall_s": round(wall, 1),
                  "cells": report["cells"], "before_whole_graph_int8": before}
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def _whole_graph_int8(source: Path, bundle_dir: Path, root: Path) -> dict:
    """The static INT8 file without the float tail, measured like the gate measures."""
    from edgekit.export.calibration import load_calibration
    from edgekit.export.gate import compare, measure
    from edgekit.export.jobs import ExportJob
    from edgekit.export.loaders import load_model
    from edgekit.export.tflite import export_tflite

    from edgekit.data.dataset import load_dataset

    bundle = Bundle.load(bundle_dir)
    spec = bundle.manifest.input
    calibration = load_calibration(str(root / "calib"), spec, count=10_000)
    start = time.perf_counter()
    exported = export_tflite(ExportJob(
        model=load_model(source), onnx_fp32=source, spec=spec, labels=bundle.manifest.labels,
        precision=Precision.INT8, workdir=root / "before", calibration=calibration.tensors,
        keep_float_tail=False))
    seconds = time.perf_counter() - start
    copy = root / "before-bundle"
    shutil.copytree(bundle_dir, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    for artifact in manifest["artifacts"]:
        if (artifact["format"], artifact["precision"]) == ("tflite", "int8"):
            shutil.copyfile(exported.path, copy / artifact["file"])
            artifact.update(sha256=sha256_file(copy / artifact["file"]),
                            size=(copy / artifact["file"]).stat().st_size,
                            details=exported.details)
    (copy / MANIFEST).write_text(json.dumps(manifest, default=str))
    before = Bundle.load(copy)
    find = {a.key: a for a in before.manifest.artifacts}
    dataset = load_dataset(str(root / "val"))
    reference = measure(before, find["onnx/fp32"], dataset)
    result = measure(before, replace(find["tflite/int8"]), dataset)
    verdict = compare(reference, result, max_drop=1.0,
                      conf=before.manifest.output.conf_threshold)
    return {"seconds": round(seconds, 1), "map50_95": result.map50_95,
            "reference_map50_95": reference.map50_95,
            "delta_map50_95": verdict["delta_map50_95"], "gate": verdict["gate"],
            "outputs": exported.details["outputs"]}


def _print(result: dict) -> None:
    print(f"\nONNX -> TFLite fp32+fp16+int8, one export, gate included: "
          f"{result['onnx_to_tflite_3_precisions_wall_s']:.1f} s wall")
    print(f"{'cell':<13} {'status':<12} {'s':>7} {'mAP50-95':>9} {'fallback':<22}")
    for cell in result["cells"]:
        value = cell["map50_95"]
        print(f"{cell['key']:<13} {cell['status']:<12} {cell['seconds']:>7.1f} "
              f"{100 * value if value is not None else float('nan'):>9.2f} "
              f"{cell['fallback'] or '-':<22}")
        for attempt in cell.get("attempts", []):
            print(f"    attempt {attempt.get('name')}: delta {attempt.get('delta_map50_95')} "
                  f"({attempt.get('gate')}), {attempt.get('latency_ms_median')} ms")
            if attempt.get("float_nodes"):
                print(f"      kept float ({len(attempt['float_nodes'])} ops): "
                      + "; ".join(attempt["float_nodes"]))
        if not cell.get("attempts") and cell.get("float_nodes"):
            print(f"    kept float ({len(cell['float_nodes'])} ops): "
                  + "; ".join(cell["float_nodes"]))
    before = result["before_whole_graph_int8"]
    out = before["outputs"][0]
    print(f"\nbefore (static INT8, whole graph int8, output {out['dtype']} scale "
          f"{out['scale']}): mAP50-95 {100 * before['map50_95']:.2f} vs fp32 "
          f"{100 * before['reference_map50_95']:.2f} (delta {before['delta_map50_95']:+.2f}, "
          f"gate {before['gate']}); quantization {before['seconds']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
