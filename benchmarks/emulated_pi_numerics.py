"""Numerical truth on aarch64: one bundle's outputs on an emulated Pi 5 against this x86 host.

Every artifact of the bundle (ONNX and .tflite at fp32, fp16, int8) runs the bundle's golden
inputs and a few rendered road scenes twice: here (x86 onnxruntime / LiteRT) and on the
emulated Raspberry Pi 5 of tests/emulated_pi.py (the aarch64 builds of the same releases:
LiteRT with XNNPACK, onnxruntime's CPU provider, under qemu-user with a Cortex-A76). Printed
per artifact: the largest |difference| of the raw outputs, whether it is within the flash
health check's tolerance for the precision, how far each machine is from the x86 fp32 ONNX
output, and detection agreement (the accuracy gate's matching, both ways).

Without --bundle it exports the sample detector (onnx, tflite x fp32, fp16, int8) at --imgsz
with small synthetic validation and calibration sets first. Emulated inference is about 100x
slower than the host: minutes, not seconds. Speed is NOT measured here; emulation says
nothing about a Pi's speed.

    nice -n 10 .venv/bin/python benchmarks/emulated_pi_numerics.py [--bundle out/sample-bundle]
        [--imgsz 320] [--images 8] [--json numerics.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from emulated_pi import EmulatedPi, compare_outputs, write_outputs  # noqa: E402


def export_sample(work: Path, imgsz: int, scheme: str | None) -> Path:
    from edgekit.export import ExportIncomplete, export

    from edgekit.data.synth import write_dataset

    write_dataset(work / "val", count=48, seed=12345, width=imgsz * 4 // 3, height=imgsz)
    write_dataset(work / "calib", count=48, seed=4242, width=imgsz * 4 // 3, height=imgsz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return export("sample", work / "bundle", formats=("onnx", "tflite"),
                          precisions=("fp32", "fp16", "int8"), imgsz=imgsz, val=work / "val",
                          calib=work / "calib", scheme=scheme).path
        except ExportIncomplete as exc:  # a failed artifact is skipped by the comparison
            print(f"export incomplete: {exc}")
            return exc.bundle.path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--scheme", choices=("u8s8", "s8s8"), default=None,
                        help="ONNX INT8 scheme of the exported bundle (default: this host's)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    start = time.monotonic()
    pi = EmulatedPi.ensure()
    print(f"emulated Pi ready in {time.monotonic() - start:.0f} s "
          f"(layers built in {pi.build_seconds()} s)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            start = time.monotonic()
            bundle = export_sample(work, args.imgsz, args.scheme)
            print(f"exported the sample at {args.imgsz} px in {time.monotonic() - start:.0f} s")
        from edgekit.bundle import Bundle
        from edgekit.data.synth import render_scene

        spec = Bundle.load(bundle).manifest.input
        rng = np.random.default_rng(9)
        np.savez(work / "images.npz", images=np.stack([
            render_scene(rng, width=spec.width * 4 // 3, height=spec.height)[0]
            for _ in range(args.images)]))
        start = time.monotonic()
        write_outputs(bundle, work / "images.npz", work / "x86.npz")
        x86_s = time.monotonic() - start
        start = time.monotonic()
        pi.run(str(ROOT / "tests" / "emulated_pi.py"), "outputs", str(bundle),
               str(work / "images.npz"), str(work / "pi.npz"), timeout=3600)
        pi_s = time.monotonic() - start
        rows = compare_outputs(bundle, work / "x86.npz", work / "pi.npz")
    print(f"\n{bundle}, {args.images} scenes + golden inputs; x86 {x86_s:.0f} s, emulated "
          f"aarch64 {pi_s:.0f} s (emulated time is not a Pi's)\n")
    print("| artifact | aarch64 ran on | max abs diff | within tolerance | x86 vs fp32 | "
          "aarch64 vs fp32 | detections x86/aarch64 | agreement (x86 ref / aarch64 ref) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['artifact']} | {r['candidate_on']} | {r['max_abs_diff']:.3g} | "
              f"{'yes' if r['within_tolerance'] else 'NO'} ({r['tolerance']}, "
              f"{r['within']:.2%} of elements) | {r['reference_vs_fp32']:.3g} | "
              f"{r['candidate_vs_fp32']:.3g} | {r['detections'][0]}/{r['detections'][1]} | "
              f"{r['agreement']:.3f} / {r['agreement_reverse']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"bundle": str(bundle), "rows": rows}, indent=2,
                                        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
