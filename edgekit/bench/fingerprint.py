"""The environment fingerprint stored with every result: enough to know what was measured."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def emulator(comm: Path = Path("/proc/self/comm")) -> str | None:
    """What emulates this machine: ``$EDGEKIT_EMULATED`` where an emulated device declares
    itself, ``"qemu-user"`` when this process is run by user-mode QEMU, else None.

    An emulated board's latency says nothing about the real board (every instruction is
    translated, about 100x slower), so results taken there must say so. qemu-user translates
    the files that would betray it (/proc/self/exe, maps, cmdline) but not the kernel's name
    for the process, which stays the emulator's own (``qemu-aarch64-st``). A qemu started by
    binfmt_misc takes the program's name instead: such a device sets EDGEKIT_EMULATED=1.
    """
    declared = os.environ.get("EDGEKIT_EMULATED", "").strip()
    if declared:
        return "declared (EDGEKIT_EMULATED)" if declared.lower() in ("1", "true", "yes") \
            else declared
    try:
        name = comm.read_text().strip()
    except OSError:
        return None
    return "qemu-user" if name.startswith("qemu-") else None


def fingerprint(*, board: str, detected_board: str | None, cpu_model: str, threads: int | None,
                versions: dict[str, str], precision: str, executed_on: str,
                runtime_precision: str | None = None) -> dict[str, Any]:
    """Board profile, CPU, cores, library versions, precision and device that really ran."""
    import numpy

    from .. import __version__

    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return {
        "board": board,
        "detected_board": detected_board,
        "cpu_model": cpu_model,
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": physical,
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": sys.version.split()[0],
        "versions": {"edgekit": __version__, "numpy": numpy.__version__, **versions},
        "precision": precision,
        "runtime_precision": runtime_precision,
        "executed_on": executed_on,
        "emulated": emulator(),
    }
