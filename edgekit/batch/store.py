"""The output folder of a batch run, and what makes it resumable and exactly-once.

Layout::

    OUT/manifest.json                         settings, bundle sha256, workers (updated at the end)
    OUT/summary.json                          per-video totals, errors
    OUT/detections/video=<id>/part-00003.parquet   one file per segment (Hive partitioning)
    OUT/_segments/<id>/00003.json             the record that segment 3 is complete

A segment counts as complete only when its record exists; the record is written after the
segment's file, both atomically. A crash between the two leaves a file without a record: the
segment runs again and its file is replaced, never duplicated, because the file name is the
segment's. Records keep the segment's numbers, so the summary never re-reads the files.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from .plan import Segment
from .sinks import SINKS, atomic_write
from .worker import SegmentOutput


class OutputConflictError(EdgekitError):
    """The output folder holds a run made with other settings."""


class OutputStore:
    """Reads and writes one run's output folder.

    Args:
        root: The output folder (created).
        sink: A name in ``SINKS`` (``parquet``, ``jsonl``).
    """

    def __init__(self, root: str | Path, *, sink: str) -> None:
        self.root = Path(root)
        self.sink_name = sink
        self.sink = SINKS.load(sink)()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def detections_dir(self) -> Path:
        return self.root / "detections"

    def part_path(self, segment: Segment) -> Path:
        return (self.detections_dir / f"video={segment.video_id}"
                / f"part-{segment.index:05d}{self.sink.suffix}")

    def record_path(self, segment: Segment) -> Path:
        return self.root / "_segments" / segment.video_id / f"{segment.index:05d}.json"

    def begin(self, identity: dict[str, Any]) -> bool:
        """Checks that the folder is new or holds the same run; returns True when resuming.

        ``identity`` holds everything that changes the rows (bundle, sampling, segmenting,
        thresholds, tracking): resuming with another would mix two runs in one output.
        """
        path = self.root / "manifest.json"
        if path.is_file():
            previous = json.loads(path.read_text()).get("identity")
            if previous != identity:
                changed = sorted(k for k in {*identity, *(previous or {})}
                                 if (previous or {}).get(k) != identity.get(k))
                raise OutputConflictError(
                    f"{self.root} holds a batch run with other settings ({', '.join(changed)}).",
                    hint="Use another output folder, or delete this one to start over.",
                )
            return True
        self.write_json("manifest.json", {"identity": identity})
        return False

    def completed(self, segment: Segment) -> dict[str, Any] | None:
        """The record of a segment completed earlier with the same range, or None."""
        path = self.record_path(segment)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        same = (record.get("start"), record.get("stop"), record.get("every")) == (
            segment.start, segment.stop, segment.every)
        return record if same and self.part_path(segment).is_file() else None

    def commit(self, output: SegmentOutput) -> dict[str, Any]:
        """Writes a segment's file, then its record; returns the record."""
        segment = output.segment
        self.sink.write(output.table, self.part_path(segment))
        record = {
            "video_id": segment.video_id, "segment": segment.index, "start": segment.start,
            "stop": segment.stop, "every": segment.every, "frames": output.frames,
            "last_frame": output.last_frame, "per_class": output.per_class,
            "analytics": output.analytics, "seconds": output.seconds, "worker": output.worker,
            "table_bytes": output.table_bytes,
        }
        atomic_write(self.record_path(segment),
                     lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
        return record

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        target = self.root / name
        atomic_write(target, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))
        return target

    def read_manifest(self) -> dict[str, Any]:
        return json.loads((self.root / "manifest.json").read_text())

    def clean_temporaries(self) -> None:
        """Removes temporary files a killed driver left behind."""
        for tmp in self.root.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def segment_dict(segment: Segment) -> dict[str, Any]:
    return asdict(segment)
