"""Benchmark history in SQLite: every result appended, queried by model and board over time.

Default file: ``~/.local/share/edgekit/history.sqlite``; ``EDGEKIT_HISTORY`` or an explicit
path overrides it. The full result is kept as JSON beside the indexed columns, so new result
fields never need a schema migration.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ..errors import EdgekitError
from .result import BenchResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    model TEXT NOT NULL,
    artifact TEXT NOT NULL,
    board TEXT NOT NULL,
    backend TEXT NOT NULL,
    executed_on TEXT NOT NULL,
    precision TEXT NOT NULL,
    threads INTEGER,
    p50_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    fps REAL NOT NULL,
    peak_rss_mb REAL,
    map50_95 REAL,
    result TEXT NOT NULL
)
"""
COLUMNS = ("id", "timestamp", "model", "artifact", "board", "backend", "executed_on",
           "precision", "threads", "p50_ms", "mean_ms", "fps", "peak_rss_mb", "map50_95")


def default_path() -> Path:
    """``$EDGEKIT_HISTORY``, else ``$XDG_DATA_HOME/edgekit/history.sqlite``."""
    if os.environ.get("EDGEKIT_HISTORY"):
        return Path(os.environ["EDGEKIT_HISTORY"])
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "edgekit" / "history.sqlite"


class History:
    """An SQLite file of benchmark results."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path)
            conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise EdgekitError(f"Cannot open the benchmark history {self.path}: {exc}.",
                               hint="Pass --history PATH (or set EDGEKIT_HISTORY) to a "
                                    "writable file, or --no-history.") from None
        return conn

    def append(self, result: BenchResult) -> int:
        """Stores one result; returns its id."""
        acc = result.accuracy or {}
        board = history_board(result.fingerprint)
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                "INSERT INTO runs (timestamp, model, artifact, board, backend, executed_on, "
                "precision, threads, p50_ms, mean_ms, fps, peak_rss_mb, map50_95, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.timestamp, result.model, result.artifact, board, result.backend,
                 result.executed_on, result.precision, result.threads, result.latency_ms["p50"],
                 result.latency_ms["mean"], result.fps, result.peak_rss_mb,
                 acc.get("map50_95"), json.dumps(result.to_dict(), default=str)))
            return int(cur.lastrowid)

    def query(self, *, model: str | None = None, board: str | None = None,
              artifact: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest runs first, filtered by model (substring), board and artifact."""
        where, args = [], []
        if model:
            where.append("model LIKE ?")
            args.append(f"%{model}%")
        for column, value in (("board", board), ("artifact", artifact)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with closing(self._connect()) as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    def get(self, run_id: int) -> dict[str, Any]:
        """One run's full stored result."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT result FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise EdgekitError(f"No run {run_id} in {self.path}.",
                               hint="`edgekit bench history` lists the run ids.")
        return {"id": run_id, **json.loads(row[0])}


def history_board(fingerprint: dict[str, Any]) -> str:
    """The history's board column: ``rpi5``, or ``rpi5@emulated`` for a run under emulation,
    so that querying a real board's history never returns an emulator's latencies."""
    board = fingerprint.get("board", "")
    return f"{board}@emulated" if fingerprint.get("emulated") else board


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Metric-by-metric change from ``old`` to ``new`` (full stored results).

    Raises:
        EdgekitError: one run was measured under emulation and the other was not.
    """
    kinds = [bool(r["fingerprint"].get("emulated")) for r in (old, new)]
    if kinds[0] != kinds[1]:
        emulated, real = (old, new) if kinds[0] else (new, old)
        raise EdgekitError(
            f"Run {emulated.get('id')} was measured under emulation "
            f"({emulated['fingerprint']['emulated']}) and run {real.get('id')} was not: an "
            "emulator's latency says nothing about the board it imitates.",
            hint="Compare runs of the same kind (`edgekit bench history --board "
                 f"{history_board(emulated['fingerprint'])}` lists the emulated ones).")

    def metric(result: dict[str, Any], key: str) -> float | None:
        if key.startswith("latency_ms."):
            return result["latency_ms"][key.split(".", 1)[1]]
        if key == "map50_95":
            return (result.get("accuracy") or {}).get("map50_95")
        return result.get(key)

    rows = []
    for key in ("latency_ms.p50", "latency_ms.p90", "latency_ms.mean", "fps", "load_ms",
                "first_inference_ms", "peak_rss_mb", "map50_95"):
        a, b = metric(old, key), metric(new, key)
        change = (b - a) / a * 100 if a not in (None, 0) and b is not None else None
        rows.append({"metric": key, "old": a, "new": b, "change_pct": change})
    for key in ("precision", "executed_on", "backend"):
        rows.append({"metric": key, "old": old.get(key), "new": new.get(key),
                     "change_pct": None})
    return rows
