"""The environment fingerprint stored with every result: enough to know what was measured."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


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
    }
