"""Reading a batch run's per-frame rows back, whichever sink wrote them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .sinks import SINKS


def read_detections(out: str | Path) -> Any:
    """All per-frame rows of a run as one ``pyarrow.Table``, plus a ``video`` column.

    Parquet output is read as a Hive-partitioned dataset; JSON lines are parsed file by file.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    root = Path(out)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise DatasetError(f"{root} holds no batch run (no manifest.json).",
                           hint="Give the -o folder of an `edgekit batch` run.")
    sink_name = json.loads(manifest.read_text())["identity"]["sink"]
    folder = root / "detections"
    if not folder.is_dir():
        return pa.table({})
    if sink_name == "parquet":
        return ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    sink = SINKS.load(sink_name)()
    tables = []
    for part in sorted(folder.glob(f"video=*/part-*{sink.suffix}")):
        table = sink.read(part)
        video = part.parent.name.split("=", 1)[1]
        tables.append(table.append_column("video", pa.array([video] * len(table))))
    return pa.concat_tables(tables) if tables else pa.table({})
