"""A rollout's state in SQLite (stdlib sqlite3): which device is in which wave, and how it went.

Every change is committed before the next step, so a host killed at any moment leaves a file
that ``edgekit rollout --resume`` continues from: done devices are never flashed again, and a
device caught mid-flash is asked what it runs before anything is sent.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, wave INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', before TEXT, after TEXT, verdict TEXT,
    reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL, seconds REAL, result TEXT);
"""
# pending: not started; flashing: a flash was started (the host may have died in it);
# unreachable: retried later; ok / failed / rolled-back / refused: final for this rollout.
FINAL = ("ok", "failed", "rolled-back", "refused")
FAILURES = ("failed", "rolled-back", "refused")


@dataclass
class DeviceRow:
    """One device of the rollout, as stored."""

    name: str
    position: int
    wave: int
    status: str
    before: str | None
    after: str | None
    verdict: str | None
    reason: str | None
    attempts: int
    started: float | None
    finished: float | None
    seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RolloutStore:
    """The SQLite file of one rollout."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise EdgekitError(f"Cannot open the rollout state {self.path}: {exc}.",
                               hint="Pass a writable file with --state.") from None

    def close(self) -> None:
        self.db.close()

    # ---- meta ------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, **values: Any) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])

    @property
    def started(self) -> bool:
        return self.get("version") is not None

    # ---- devices ---------------------------------------------------------------------------

    def add_devices(self, waves: list[list[str]]) -> None:
        position = 0
        with self.db:
            for wave, names in enumerate(waves):
                for name in names:
                    self.db.execute("INSERT INTO devices (name, position, wave) VALUES (?,?,?)",
                                    (name, position, wave))
                    position += 1

    def devices(self, wave: int | None = None) -> list[DeviceRow]:
        query = "SELECT name, position, wave, status, before, after, verdict, reason, " \
                "attempts, started, finished, seconds FROM devices"
        args: tuple = ()
        if wave is not None:
            query += " WHERE wave = ?"
            args = (wave,)
        return [DeviceRow(*row) for row in self.db.execute(query + " ORDER BY position", args)]

    def mark(self, name: str, **fields: Any) -> None:
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"], default=str)
        sets = ", ".join(f"{key} = ?" for key in fields)
        self.db.execute(f"UPDATE devices SET {sets} WHERE name = ?", (*fields.values(), name))

    def start_flash(self, name: str) -> None:
        """Recorded BEFORE anything is sent: a resume then knows to ask the device first."""
        self.db.execute("UPDATE devices SET status = 'flashing', attempts = attempts + 1, "
                        "started = COALESCE(started, ?) WHERE name = ?", (time.time(), name))

    def failures(self) -> int:
        marks = ",".join("?" * len(FAILURES))
        return self.db.execute(f"SELECT COUNT(*) FROM devices WHERE status IN ({marks})",
                               FAILURES).fetchone()[0]

    def attempted(self) -> int:
        marks = ",".join("?" * len(FINAL))
        return self.db.execute(f"SELECT COUNT(*) FROM devices WHERE status IN ({marks})",
                               FINAL).fetchone()[0]
