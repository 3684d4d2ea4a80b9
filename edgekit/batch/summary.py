"""Adding segment records up into per-video and per-run totals."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .plan import VideoInfo, count_sampled


def merge_analytics(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sums line crossings (per line, direction, class) and zone entries/exits/dwell.

    Tracks restart at every segment boundary, so an object crossing a line exactly at a seam
    can be missed or counted by both segments (docs/scale-out.md gives the size of that effect).
    """
    parts = [p for p in parts if p]
    if not parts:
        return None
    lines: dict[str, dict[str, Counter]] = {}
    zones: dict[str, Counter] = {}
    for part in parts:
        for name, directions in part["lines"].items():
            for direction, classes in directions.items():
                lines.setdefault(name, {}).setdefault(direction, Counter()).update(classes)
        for name, zone in part["zones"].items():
            zones.setdefault(name, Counter()).update(zone)
    return {
        "lines": {n: {d: dict(c) for d, c in ds.items()} for n, ds in lines.items()},
        "zones": {n: {"entered": int(z["entered"]), "exits": int(z["exits"]),
                      "mean_dwell_s": round(z["dwell_total_s"] / z["exits"], 3)
                      if z["exits"] else None} for n, z in zones.items()},
    }


def video_summary(info: VideoInfo, records: list[dict[str, Any]], *, segments: int,
                  every: int, errors: list[str]) -> dict[str, Any]:
    """One video's totals: frames, detections per class, analytics, status and errors."""
    per_class: Counter = Counter()
    for record in records:
        per_class.update(record["per_class"])
    frames = sum(r["frames"] for r in records)
    expected = count_sampled(0, info.frames, every) if info.frames > 0 else None
    if info.error:
        status = "unreadable"
    elif errors or len(records) < segments:
        status = "incomplete"
    else:
        status = "complete"
    summary = {
        "source": info.source, "video_id": info.video_id, "status": status,
        "fps": info.fps, "width": info.width, "height": info.height, "every": every,
        "frames_in_file": info.frames if info.frames > 0 else None,
        "frames_processed": frames, "frames_expected": expected,
        "segments": segments, "segments_complete": len(records),
        "detections": sum(per_class.values()), "per_class": dict(sorted(per_class.items())),
        "errors": ([info.error] if info.error else []) + errors,
    }
    analytics = merge_analytics([r.get("analytics") for r in records])
    if analytics is not None:
        summary["analytics"] = analytics
    return summary


def workers_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every worker process that completed segments: where it ran and what really executed."""
    seen: dict[tuple, dict[str, Any]] = {}
    for record in records:
        w = record["worker"]
        key = (w.get("node_id"), w.get("pid"))
        entry = seen.setdefault(key, {**w, "segments": 0, "frames": 0})
        entry["segments"] += 1
        entry["frames"] += record["frames"]
    return list(seen.values())
