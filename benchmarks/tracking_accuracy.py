"""Tracking accuracy on testsrc:// against its ground truth: MOTA, IDF1 and count error.

    python benchmarks/tracking_accuracy.py [--config samples/vehicle_counting.yaml]
        [--seeds 3,4,5] [--objects 5] [--seconds 15] [--fps 15] [--json out.json]

Renders the generated road (as `edgekit run --source "testsrc://?fps=15&seed=3&objects=5"`
shows it), runs the sample model and the analytics of the config on every frame, and scores
tracks and counts against what the generator drew (edgekit.analytics.scoring). Prints one
row per seed and the mean. Aim: IDF1 >= 0.9 and line and zone counts exact.
"""

from __future__ import annotations

import argparse
import json
import time

from edgekit.analytics import load_config
from edgekit.analytics.scoring import score_testsrc
from edgekit.detector import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--config", default="samples/vehicle_counting.yaml")
    parser.add_argument("--seeds", default="3,4,5,6,7")
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--moving-only", action="store_true",
                        help="Score the moving vehicles only (parked ones: ignore regions).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    detector = Detector.open(args.model)
    config = load_config(args.config)
    print(f"model {args.model} ({detector.artifact.key}), config {args.config}, "
          f"tracker {config.tracker}")
    print(f"{'seed':>4} {'frames':>6} {'MOTA':>6} {'IDF1':>6} {'IDSW':>5} {'FP':>5} "
          f"{'FN':>5} {'truth':>5} {'ids':>5} {'count err':>9}  expected -> measured")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        score = score_testsrc(detector, config, seed=seed, objects=args.objects, fps=args.fps,
                              frames=int(args.seconds * args.fps), moving_only=args.moving_only)
        rows.append({"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
                     **score.to_dict()})
        diff = ", ".join(f"{k} {v}->{score.measured.get(k)}" for k, v in score.expected.items())
        print(f"{seed:>4} {score.frames:>6} {score.mota:>6.3f} {score.idf1:>6.3f} "
              f"{score.id_switches:>5} {score.false_positives:>5} {score.misses:>5} "
              f"{score.truth_tracks:>5} {score.tracker_ids:>5} {score.count_error:>9}  {diff}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("mota", "idf1", "count_error")}
    print(f"mean: MOTA {mean['mota']:.3f}  IDF1 {mean['idf1']:.3f}  "
          f"count error {mean['count_error']:.2f} per sequence "
          f"({sum(r['count_error'] == 0 for r in rows)}/{len(rows)} sequences exact)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "mean": mean}, handle, indent=2)


if __name__ == "__main__":
    main()
