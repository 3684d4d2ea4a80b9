"""The device service's figures: swap time, frames dropped in a swap, rollback after a live failure.

A real ``Service`` (the code behind ``edgekit serve``) runs the sample detector on a generated
live camera (testsrc://, 640x480 at 10 fps by default) with a JSONL sink, on an install root
flashed with ``edgekit flash`` to a local path (the agent runs as on a device). Then:

- ``--swaps`` flashes alternating between two copies of the sample bundle (other names, so other
  versions): each is loaded and warmed beside the running one and swapped in;
- one flash of a copy whose manifest threshold is 0.99: it passes the golden check (the raw
  outputs are right) but its detections collapse on live frames, and the service rolls back.

Printed: load and warm time, swap time (swapped in, loaded and warmed -> first frame on it),
frames dropped (source + sinks, from load start to that first frame), the gap in the JSONL's
frame indices at each model change (a frame lost BY the swap) against the gaps elsewhere (the
machine not keeping up at all), and the rollback: swap -> verdict, verdict -> old model back.

    nice -n 10 .venv/bin/python benchmarks/service_swap.py [--swaps 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from edgekit.devices.flash import FlashSettings, flash_async, parse_target
from edgekit.devices.service import Service, parse_service_config

from edgekit.detector import SAMPLE_BUNDLE


def _copy(dest: Path, name: str, conf: float | None = None) -> Path:
    shutil.copytree(SAMPLE_BUNDLE, dest)
    manifest = json.loads((dest / "edgekit.json").read_text())
    manifest["name"] = name
    if conf is not None:
        manifest["output"]["conf_threshold"] = conf
    (dest / "edgekit.json").write_text(json.dumps(manifest, indent=2))
    return dest


def _flash(bundle: Path, root: Path) -> dict:
    result = asyncio.run(flash_async(bundle, parse_target(str(root)),
                                     settings=FlashSettings(verdict_timeout_s=120)))
    return {"status": result.status, "reason": result.reason,
            "verdict": (result.details or {}).get("service") or
            (result.details or {}).get("verdict")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=6)
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a, b = _copy(work / "a", "sample-a"), _copy(work / "b", "sample-b")
        dim = _copy(work / "dim", "sample-dim", conf=0.99)
        root = work / "device"
        assert _flash(a, root)["status"] == "ok"
        events = work / "events.jsonl"
        config = parse_service_config({
            "sources": [f"testsrc://?fps={args.fps:g}&objects=4&width={width}&height={height}"],
            "sinks": [str(events)],
            "probation": {"frames": 45, "seconds": 30, "shadow_every": 2},
            "status": {"listen": ""}})
        service = Service(root, config, poll_s=0.1)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        while not events.is_file() or events.stat().st_size == 0:
            time.sleep(0.1)
        swaps = []
        for i in range(args.swaps):
            answer = _flash(b if i % 2 == 0 else a, root)
            assert answer["status"] == "ok", answer
            swaps.append(answer["verdict"]["swap"])
        failed = _flash(dim, root)
        time.sleep(2)  # frames after the rollback
        service.stop()
        thread.join(30)
        verdict = failed["verdict"]
        back = service.root.record["swaps"][-1]  # the swap back to the previous model
        lines = [json.loads(x) for x in events.read_text().splitlines()]
    pairs = list(zip(lines, lines[1:], strict=False))
    at_swap = [n["index"] - p["index"] - 1 for p, n in pairs if p["model"] != n["model"]]
    elsewhere = sum(n["index"] - p["index"] - 1 for p, n in pairs if p["model"] == n["model"])
    span = lines[-1]["index"] - lines[0]["index"] + 1

    def med(key: str) -> float:
        return round(statistics.median(s[key] for s in swaps), 3)

    print(f"swaps: {len(swaps)} (sample detector, {args.size} testsrc at {args.fps:g} fps)")
    print(f"  load {med('load_s')} s, warm {med('warm_s')} s (median; beside the running model)")
    print(f"  swap -> first frame on the new model: median {med('first_frame_ms')} ms, max "
          f"{max(s['first_frame_ms'] for s in swaps)} ms")
    print(f"  frames dropped from load start to that frame: {[s['dropped'] for s in swaps]}")
    print(f"  JSONL: frames lost at each model change: {at_swap}; elsewhere {elsewhere} of "
          f"{span} frames ({elsewhere / span:.1%}: the machine's own backlog)")
    print(f"live failure: {failed['status']}: {failed['reason']}")
    figures = verdict["figures"]
    print(f"  swap -> verdict {figures['decided_after_s']} s ({figures['frames']} frames, "
          f"{figures['compared_frames']} compared); verdict -> old model swapped back "
          f"{figures['rollback_ms']} ms (link switch and record included); first frame on it "
          f"{back['first_frame_ms']} ms after the swap back")


if __name__ == "__main__":
    main()
