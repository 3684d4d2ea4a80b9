"""Times pre-processing, inference and post-processing per frame with onnxruntime.

Usage: python benchmarks/prepost_latency.py [MODEL] [--frames N] [--threads N]

MODEL defaults to the shipped sample bundle. Frames are synthetic 512x384 road scenes (the
sample's data), each processed by the same Detector every backend uses. Prints the median and
p90 of each stage and the ratio (pre + post) / inference (aim: under 10%).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from edgekit.backends import BackendOptions
from edgekit.data.synth import render_scene
from edgekit.detector import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="sample")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    detector = Detector.open(args.model, options=BackendOptions(threads=args.threads))
    images = [render_scene(np.random.default_rng([99, i]))[0] for i in range(32)]
    for image in images[:10]:  # warm-up: first runs allocate and pick kernels
        detector(image)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    boxes = 0
    for i in range(args.frames):
        boxes += len(detector(images[i % len(images)]))
        for name in stages:
            stages[name].append(getattr(detector.times, name))

    print(
        f"model {args.model} [{detector.artifact.key}] on {detector.backend.executed_on}, "
        f"input {list(detector.manifest.input.shape)}, {args.threads} threads, "
        f"{args.frames} frames, {boxes / args.frames:.1f} boxes/frame"
    )
    medians = {}
    for name, values in stages.items():
        medians[name] = statistics.median(values)
        p90 = float(np.percentile(values, 90))
        print(f"  {name:<12} median {medians[name]:7.3f} ms   p90 {p90:7.3f} ms")
    ratio = (medians["preprocess"] + medians["postprocess"]) / medians["inference"]
    print(f"  (pre + post) / inference = {ratio:.1%}  (aim < 10%)")


if __name__ == "__main__":
    main()
