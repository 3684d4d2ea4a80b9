"""Soak: a live pipeline for N minutes; RSS and frame age sampled as it runs.

    python benchmarks/pipeline_soak.py [--model sample] [--minutes 10] [--fps 15] [--json f]

Runs testsrc -> model -> ByteTrack + a line and a zone -> jsonl + mp4 + live view (no viewer).
Prints RSS at start (after a 30 s warm-up, once every buffer exists), every minute, and at the
end; the aim is growth under 20 MB over 10 minutes with frame age flat.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from edgekit.analytics import parse_config
from edgekit.detector import Detector
from edgekit.pipeline import Pipeline

CONFIG = {"relative": True,
          "lines": [{"name": "mid", "start": [0.5, 0.0], "end": [0.5, 1.0]}],
          "zones": [{"name": "road", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    process = psutil.Process()
    detector = Detector.open(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        sinks = [f"{tmp}/events.jsonl", f"{tmp}/out.mp4", "http://127.0.0.1:0"]
        pipeline = Pipeline(detector, [f"testsrc://?fps={args.fps}&width=640&height=480"],
                            sinks, analytics=parse_config(CONFIG))
        pipeline.start()
        samples = []
        try:
            time.sleep(args.warmup_s)
            start_rss = process.memory_info().rss / 2**20
            t0 = time.monotonic()
            print(f"start RSS {start_rss:.1f} MB (after {args.warmup_s:.0f} s warm-up)")
            while time.monotonic() - t0 < args.minutes * 60:
                age = pipeline.metrics.camera("cam0").frame_age
                before = age.count
                time.sleep(min(60.0, args.minutes * 60 - (time.monotonic() - t0)))
                recent = list(age._values)[-(age.count - before):] if age.count > before else [0]
                rss = process.memory_info().rss / 2**20
                samples.append({"t_s": round(time.monotonic() - t0), "rss_mb": round(rss, 1),
                                "age_p50_ms": round(float(np.median(recent)), 1),
                                "age_p99_ms": round(float(np.percentile(recent, 99)), 1)})
                print(samples[-1], flush=True)
        finally:
            pipeline.stop()
        summary = pipeline.summary()
        mp4_mb = Path(f"{tmp}/out.mp4").stat().st_size / 2**20
    end_rss = samples[-1]["rss_mb"] if samples else start_rss
    growth = end_rss - start_rss
    print(f"\nRSS start {start_rss:.1f} MB, end {end_rss:.1f} MB, growth {growth:+.1f} MB over "
          f"{args.minutes:g} min (aim < 20 MB); frames out {summary['frames_out']}, dropped "
          f"{summary['dropped']}, events {summary['events']}, mp4 {mp4_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"minutes": args.minutes, "start_rss_mb": round(start_rss, 1),
             "end_rss_mb": end_rss, "growth_mb": round(growth, 1), "samples": samples,
             "summary": summary}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
