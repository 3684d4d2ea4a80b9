"""Segment files of a batch run: Parquet (pyarrow) or JSON lines, one file per segment.

Each writer writes one segment's table to a temporary file beside the target and renames it
into place, so a reader (or a resumed run) never sees half a segment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..registry import Registry


def atomic_write(target: Path, write: Any) -> None:
    """Calls ``write(tmp_path)``, fsyncs, and renames over ``target`` (same folder, so atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class ParquetSink:
    """``video=<id>/part-<segment>.parquet``: read the folder with ``pyarrow.dataset``."""

    suffix = ".parquet"

    def write(self, table: Any, target: Path) -> None:
        import pyarrow.parquet as pq

        atomic_write(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))

    def read(self, path: Path) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path)


class JsonlSink:
    """``video=<id>/part-<segment>.jsonl``: one JSON object per frame."""

    suffix = ".jsonl"

    def write(self, table: Any, target: Path) -> None:
        def dump(tmp: Path) -> None:
            with tmp.open("w") as out:
                for row in table.to_pylist():
                    out.write(json.dumps(row) + "\n")

        atomic_write(target, dump)

    def read(self, path: Path) -> Any:
        import pyarrow as pa

        from .records import schema

        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        return pa.Table.from_pylist(rows, schema=schema())


SINKS: Registry[type] = Registry("batch sink", {
    "parquet": "edgekit.batch.sinks:ParquetSink",
    "jsonl": "edgekit.batch.sinks:JsonlSink",
})
