"""The install root as the service sees it: the ``current`` link, the history, service.json.

The layout and its files belong to the flash agent (devices/flash/agent.py); this module reads
and writes them with the agent's own helpers, so both sides keep one format.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..flash import agent

VERDICTS_KEPT = 20


class InstallRoot:
    """One install root (``--root``): which version is active, and the service's record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.record: dict[str, Any] = {"pid": os.getpid(), "started": time.time(),
                                       "status": "starting", "version": None, "verdicts": []}

    def active(self) -> str | None:
        """The version ``current`` points at (None: nothing flashed yet)."""
        return agent._current(self.path)

    def directory(self, version: str) -> Path:
        return self.path / "versions" / version

    def busy(self) -> bool:
        """Whether a flash holds the lock (switching or health-checking a version)."""
        try:
            with agent._locked(self.path, blocking=False):
                return False
        except BlockingIOError:
            return True

    def roll_back(self, failed: str, restore: str, reason: str, figures: dict[str, Any]) -> bool:
        """Points ``current`` back at ``restore`` and records why; False if a flash moved on.

        Waits for a flash in progress (the lock) so the history stays in order.
        """
        with agent._locked(self.path):
            if self.active() != failed:
                return False  # another flash or rollback already replaced it
            agent._switch(self.path, restore)
            state = agent._state(self.path)
            health = {"ok": False, "reason": f"live probation: {reason}", "live": figures}
            state["last_health"] = {"version": failed, **health}
            agent._record(self.path, state, version=failed, action="rolled-back", health=health,
                          restored=restore, by="service")
        return True

    def verdict(self, **entry: Any) -> dict[str, Any]:
        """Adds (or, same version and ``since``, updates) a verdict in service.json."""
        verdicts = self.record["verdicts"]
        for old in verdicts:
            if old["version"] == entry["version"] and old["since"] == entry["since"]:
                old.update(entry)
                break
        else:
            verdicts.append(entry)
        del verdicts[:-VERDICTS_KEPT]
        self.beat()
        return entry

    def beat(self, **fields: Any) -> None:
        """Writes service.json (the agent reads it: alive, version, verdicts)."""
        self.record.update(fields, heartbeat=time.time())
        agent._write_json(self.path / "service.json", self.record)
