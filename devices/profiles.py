"""Board profiles: one TOML file per board in devices/boards/, read as typed data."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle, Format, Precision
from edgekit.errors import BundleError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BOARDS_DIR = Path(__file__).parent / "boards"


@dataclass(frozen=True, kw_only=True)
class BoardProfile:
    """What a board is and what it should run.

    Attributes:
        name: File stem, e.g. ``rpi5``.
        family: Runner family: ``jetson``, ``rpi``, ``intel-npu`` or ``cpu``.
        prefer: (format, precision) pairs, best first.
        runtimes: Python packages the board needs to run its preferred artifacts.
        threads: Default inference threads; 0 means one per core of the machine.
        detect: Facts that identify the board (device-tree model, OpenVINO device, arch).
    """

    name: str
    title: str
    family: str
    arch: str
    cpu: str
    cores: int
    memory_gb: float
    accelerators: tuple[str, ...] = ()
    threads: int = 0
    prefer: tuple[tuple[Format, Precision], ...] = ()
    runtimes: tuple[str, ...] = ()
    detect: dict[str, Any] = field(default_factory=dict)

    def default_threads(self) -> int:
        return self.threads or self.cores or os.cpu_count() or 1

    def choose(self, bundle: Bundle) -> Any:
        """Returns the artifact of ``bundle`` this board runs (its first preferred one present).

        Raises:
            BundleError: the bundle has none of the formats/precisions this board can run.
        """
        have = {(a.format, a.precision): a for a in bundle.manifest.artifacts}
        for pair in self.prefer:
            if pair in have:
                return have[pair]
        wanted = ", ".join(f"{f}/{p}" for f, p in self.prefer)
        raise BundleError(
            f"{bundle.path} has nothing the board '{self.name}' runs (it takes: {wanted}).",
            hint="Export one of those: `edgekit export MODEL --to ... --precision ...`.",
        )


def _parse(path: Path) -> BoardProfile:
    data = tomllib.loads(path.read_text())
    prefer = tuple(
        (Format.parse(f), Precision.parse(p))
        for f, p in (entry.split("/") for entry in data.pop("prefer", []))
    )
    return BoardProfile(
        name=path.stem,
        prefer=prefer,
        accelerators=tuple(data.pop("accelerators", ())),
        runtimes=tuple(data.pop("runtimes", ())),
        **data,
    )


@cache
def profiles() -> dict[str, BoardProfile]:
    """All shipped board profiles by name."""
    return {p.stem: _parse(p) for p in sorted(BOARDS_DIR.glob("*.toml"))}


def load_profile(name: str) -> BoardProfile:
    """Returns one board profile, or fails listing the valid names."""
    try:
        return profiles()[name]
    except KeyError:
        raise UnknownNameError(
            f"Unknown board '{name}'.", hint=f"Valid boards: {', '.join(profiles())}."
        ) from None
