"""Shared fixtures: tiny real models built with onnx.helper, run by the real runtimes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_yolo_onnx, run_cli  # noqa: F401  (re-exported for fixtures)


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    return make_yolo_onnx(
        tmp_path / "tiny.onnx", boxes=[(10, 12, 8, 6, 1, 0.9), (20, 20, 6, 6, 2, 0.8)]
    )


@pytest.fixture(scope="session")
def emulated_pi():
    """An emulated Raspberry Pi 5 (tests/emulated_pi.py: aarch64 Debian + Python 3.11 under
    qemu-user, this tree's edgekit), built once and cached between sessions; skipped, saying
    what to install, where qemu-user-static or debootstrap is missing."""
    from emulated_pi import EmulatedPi, Unavailable

    try:
        return EmulatedPi.ensure()
    except Unavailable as exc:
        pytest.skip(f"emulated Raspberry Pi: {exc}")
