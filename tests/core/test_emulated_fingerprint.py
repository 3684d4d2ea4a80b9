"""Results measured under emulation say so and are never compared with a real board's."""

from __future__ import annotations

import pytest

from edgekit.bench.fingerprint import emulator
from edgekit.bench.history import compare
from edgekit.errors import EdgekitError


def test_emulator_reads_the_process_name_qemu_user_leaves(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_EMULATED", raising=False)
    comm = tmp_path / "comm"
    comm.write_text("qemu-aarch64-st\n")
    assert emulator(comm) == "qemu-user"
    comm.write_text("python3\n")
    assert emulator(comm) is None
    assert emulator(tmp_path / "missing") is None
    assert emulator() is None  # this test itself runs natively


def test_emulator_can_be_declared(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_EMULATED", "1")
    assert emulator(tmp_path / "missing") == "declared (EDGEKIT_EMULATED)"
    monkeypatch.setenv("EDGEKIT_EMULATED", "qemu-system-aarch64")
    assert emulator(tmp_path / "missing") == "qemu-system-aarch64"


def _run(run_id: int, emulated: str | None) -> dict:
    return {"id": run_id, "artifact": "tflite/int8", "precision": "int8", "backend": "litert",
            "executed_on": "CPU (XNNPACK)", "fps": 10.0, "load_ms": 1.0,
            "first_inference_ms": 1.0, "peak_rss_mb": 1.0,
            "latency_ms": {"p50": 100.0, "p90": 110.0, "mean": 101.0},
            "fingerprint": {"board": "rpi5", "emulated": emulated}}


def test_compare_refuses_an_emulated_run_against_a_real_one():
    with pytest.raises(EdgekitError, match="Run 2 was measured under emulation") as info:
        compare(_run(1, None), _run(2, "qemu-user"))
    assert "rpi5@emulated" in info.value.hint
    rows = compare(_run(1, "qemu-user"), _run(2, "qemu-user"))
    assert rows[0] == {"metric": "latency_ms.p50", "old": 100.0, "new": 100.0,
                       "change_pct": 0.0}
