"""Which artifact runs by default: the fastest measured one that passed its accuracy gate.

A board profile's order (OpenVINO INT8 first on x86, say) is a guess made before anything was
measured; on the demo's own bundle it picked ``openvino/int8`` at 8.2 ms p50 against 4.7 ms
for ``openvino/fp32``, the slowest with the lowest mAP. So the choice reads what was measured:

1. only artifacts whose runtime is installed here and whose gate did not fail;
2. latency from this board's benchmark history (``edgekit bench``, matched by the file's
   sha256), else the median latency the export gate measured, where the board is the kind of
   machine that measured it (a plain CPU): a host's latency says nothing about a Jetson's GPU;
3. the fastest measured wins; the profile's order breaks ties and decides when nothing was
   measured.

``explain`` gives the one-line reason; ``rows`` the figures of every candidate (``--explain``).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import Artifact

#: Runs of this board's history considered per artifact (the newest ones).
HISTORY_RUNS = 5


@dataclass(frozen=True, slots=True)
class Candidate:
    """One artifact the board could run, with what was measured about it."""

    artifact: Artifact
    backend: str | None  # None: no runtime for it is installed here
    rank: int  # position in the board profile's order (0 = its first choice)
    latency_ms: float | None = None
    latency_from: str = ""

    @property
    def gate(self) -> str | None:
        return (self.artifact.accuracy or {}).get("gate")

    @property
    def map50_95(self) -> float | None:
        return (self.artifact.accuracy or {}).get("map50_95")

    @property
    def eligible(self) -> bool:
        return self.backend is not None and self.gate != "failed"

    def why_not(self) -> str:
        if self.backend is None:
            return "no runtime installed here"
        return "failed its accuracy gate" if self.gate == "failed" else ""


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen candidate, every candidate, and the reason in one line."""

    chosen: Candidate
    candidates: tuple[Candidate, ...]
    explain: str

    def rows(self) -> list[tuple[Any, ...]]:
        """(artifact, runtime, gate, mAP points, latency ms, latency from, verdict) per row."""
        out = []
        for c in self.candidates:
            verdict = "chosen" if c is self.chosen else (c.why_not() or "")
            out.append((c.artifact.key, c.backend or "-", c.gate or "not measured",
                        None if c.map50_95 is None else f"{100 * c.map50_95:.2f}",
                        None if c.latency_ms is None else f"{c.latency_ms:.2f}",
                        c.latency_from or "-", verdict))
        return out


def choose(options: Sequence[tuple[Artifact, str | None]], *, board: str,
           history: Path | None = None, gate_latency: bool = True) -> Choice | None:
    """Picks the default artifact among ``options`` (profile order, best first).

    Args:
        options: (artifact, backend that runs it here or None) in the profile's order.
        board: The board profile's name (history rows are per board).
        history: A benchmark history file to read (never created); None reads none.
        gate_latency: Whether the export gate's latency stands for this machine's.

    Returns:
        The choice, or None when no option is eligible (the caller says what is missing).
    """
    measured = _history_latencies(history, board) if history else {}
    candidates = []
    for rank, (artifact, backend) in enumerate(options):
        latency, source = measured.get(artifact.sha256, (None, ""))
        gate_ms = artifact.details.get("latency_ms_median")
        if latency is None and gate_latency and isinstance(gate_ms, (int, float)):
            threads = artifact.details.get("latency_threads")
            latency, source = float(gate_ms), "export gate" + (
                f", {threads} threads" if threads else "")
        candidates.append(Candidate(artifact, backend, rank, latency, source))
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return None
    timed = [c for c in eligible if c.latency_ms is not None]
    if timed:
        chosen = min(timed, key=lambda c: (round(c.latency_ms, 2), c.rank))
        why = (f"fastest measured of {len(timed)} that passed the gate here: "
               f"{chosen.latency_ms:.2f} ms ({chosen.latency_from})")
        if chosen.map50_95 is not None:
            why += f", mAP {100 * chosen.map50_95:.2f}"
    else:
        chosen = min(eligible, key=lambda c: c.rank)
        why = f"nothing measured: the board profile '{board}' order"
    skipped = [c for c in candidates if not c.eligible and c.rank < chosen.rank]
    if skipped:
        why += "; skipped " + ", ".join(f"{c.artifact.key} ({c.why_not()})" for c in skipped)
    return Choice(chosen, tuple(candidates), f"{chosen.artifact.key} on {chosen.backend}: {why}")


def _history_latencies(path: Path, board: str) -> dict[str, tuple[float, str]]:
    """sha256 -> (median p50 of its newest runs on ``board``, source) from a history file.

    Read-only: a missing or unreadable history is no history (choosing must not create files
    or fail because a benchmark database is damaged).
    """
    if not path.is_file():
        return {}
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT p50_ms, result FROM runs WHERE board = ? "
                                "ORDER BY id DESC LIMIT 2000", (board,)).fetchall()
    except sqlite3.Error:
        return {}
    runs: dict[str, list[float]] = {}
    for p50, text in rows:
        try:
            sha = json.loads(text).get("sha256")
        except ValueError:
            continue
        if sha and len(runs.setdefault(sha, [])) < HISTORY_RUNS:
            runs[sha].append(float(p50))
    return {sha: (statistics.median(v), f"bench history on {board}, {len(v)} run(s)")
            for sha, v in runs.items()}
