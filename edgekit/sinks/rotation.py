"""Rotation of file sinks by size or age, keeping the newest N files.

``events.jsonl?rotate=1h&keep=24`` or ``out.mp4?rotate=100MB&keep=5``. The file being written
keeps its name (a reader can tail it); a full one is renamed with its start time and a
sequence number, ``events.20261202-063700-000.jsonl`` (names sort in time order, also for
several files in one second), and the oldest renamed files beyond ``keep`` are deleted.
At 25 fps a JSONL sink writes about 110 MB an hour; without rotation a disk fills in days.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError

_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20,
               "gib": 2**30}
_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_STAMP = "%Y%m%d-%H%M%S"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """When a file sink starts a new file, and how many finished files it keeps.

    Attributes:
        max_bytes: Start a new file once the current one is this large.
        max_age_s: Start a new file once the current one is this old.
        keep: Finished files kept (the oldest beyond this are deleted).
    """

    max_bytes: int | None = None
    max_age_s: float | None = None
    keep: int = 10

    @classmethod
    def from_query(cls, uri: str, query: dict[str, list[str]]) -> Rotation | None:
        """Reads ``rotate=1h|30m|100MB|1GiB`` and ``keep=N``; None without ``rotate``."""
        if "rotate" not in query:
            if "keep" in query:
                raise EdgekitError(f"{uri}: keep= needs rotate=.", hint="e.g. ?rotate=1h&keep=24")
            return None
        text = query["rotate"][-1]
        match = _VALUE.match(text.lower())
        amount, unit = (float(match[1]), match[2]) if match else (0.0, "")
        keep_text = query.get("keep", ["10"])[-1]
        if not (amount > 0 and (unit in _SIZE_UNITS or unit in _AGE_UNITS)):
            raise EdgekitError(
                f"{uri}: rotate={text!r} is neither a size nor an age.",
                hint="Use a size (100MB, 1GB, 512MiB) or an age (30s, 15m, 1h, 1d).")
        if not keep_text.isdigit() or int(keep_text) < 1:
            raise EdgekitError(f"{uri}: keep={keep_text!r} must be a whole number >= 1.",
                               hint="e.g. ?rotate=1h&keep=24")
        if unit in _SIZE_UNITS:
            return cls(max_bytes=int(amount * _SIZE_UNITS[unit]), keep=int(keep_text))
        return cls(max_age_s=amount * _AGE_UNITS[unit], keep=int(keep_text))


class RotatingPath:
    """One output path under a rotation: says when it is due and renames and prunes files."""

    def __init__(self, path: Path, rotation: Rotation) -> None:
        self.path = Path(path)
        self.rotation = rotation
        self.started = time.time()
        self.rolls = 0

    def due(self, size: int) -> bool:
        """Whether the current file (``size`` bytes so far) should be closed and renamed."""
        r = self.rotation
        return bool((r.max_bytes is not None and size >= r.max_bytes)
                    or (r.max_age_s is not None and time.time() - self.started >= r.max_age_s))

    def roll(self) -> Path:
        """Renames the (closed) current file with its start time; deletes the oldest beyond keep.

        Returns the new name of the finished file.
        """
        stamp = time.strftime(_STAMP, time.localtime(self.started))
        # Several rolls in one second (small size limits) count up from the highest number
        # of that second still on disk: a pruned number is never reused out of order.
        prefix = f"{self.path.stem}.{stamp}-"
        n = 1 + max((int(p.stem[len(prefix):]) for p in self.finished()
                     if p.stem.startswith(prefix)), default=-1)
        target = self.path.with_name(f"{prefix}{n:03d}{self.path.suffix}")
        if self.path.exists():
            self.path.rename(target)
        self.started = time.time()
        self.rolls += 1
        self._prune()
        return target

    def finished(self) -> list[Path]:
        """The renamed files of this path on disk, oldest first (earlier runs' too)."""
        pattern = re.compile(rf"^{re.escape(self.path.stem)}\.\d{{8}}-\d{{6}}-\d{{3,}}"
                             rf"{re.escape(self.path.suffix)}$")
        found = [p for p in self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}")
                 if pattern.match(p.name)]
        # By name, not mtime: file times are only as fine as the kernel's tick.
        return sorted(found, key=lambda p: (len(p.name), p.name))

    def _prune(self) -> None:
        files = self.finished()
        for old in files[:max(0, len(files) - self.rotation.keep)]:
            old.unlink(missing_ok=True)
