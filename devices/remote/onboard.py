"""The device side of ``edgekit bench --on``: benchmark a scratch copy of a bundle, here.

Run by the device's own Python with the device's own edgekit and runtimes::

    python -m edgekit.devices.remote.onboard --dir SCRATCH --plan SCRATCH/bench-plan.json

SCRATCH holds what the host sent (the manifest, the artifacts to measure, the golden file and
optionally a small validation set); it is never the install root's ``current`` version, so the
installed model is not touched. Every line on stdout is one JSON event, flushed at once so the
host can show progress while the run goes on:

- ``{"event": "progress", "message": ...}``
- ``{"event": "result", "artifact": KEY, "result": {...}}`` (a BenchResult plus ``thermal``,
  ``golden`` and ``peak``)
- ``{"event": "error", "artifact": KEY | null, "reason": ...}``
- ``{"event": "peak", "threads": N, "peak": {...}}``: the better of two probe windows
- ``{"event": "done", "protocol": 1}`` last, so a run killed midway is told from a finished one.

Exit status: 0 when every artifact was measured, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PROTOCOL = 1
HEARTBEAT_S = 5.0  # a progress line per artifact this often during a long (--duration) run
MANIFEST = "edgekit.json"
SOURCE_MANIFEST = "edgekit.source.json"


def emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}, default=str) + "\n")
    sys.stdout.flush()


def prune_manifest(directory: Path, files: set[str]) -> None:
    """Keeps the sent manifest as edgekit.source.json; edgekit.json lists what is here.

    The scratch copy holds only some artifacts of the bundle; a manifest naming absent files
    would fail ``Bundle.load``'s sha256 verification (as flash's agent does for one artifact).
    """
    source = directory / SOURCE_MANIFEST
    if not source.is_file():
        os.replace(directory / MANIFEST, source)
    data = json.loads(source.read_text())
    data["artifacts"] = [a for a in data.get("artifacts", []) if a.get("file") in files]
    (directory / MANIFEST).write_text(json.dumps(data, indent=2))


def golden_check(directory: Path, key: str, *, board: str | None, threads: int | None) -> dict:
    """Replays the bundle's golden inputs on this device's runtime (as flash's health check)."""
    from edgekit.devices.flash.health import TOLERANCES, _replay
    from edgekit.devices.runners import load_runner

    from edgekit.bundle import Bundle, Precision

    fmt, precision = key.split("/")
    runner = load_runner(directory, board=board, format=fmt, precision=precision,
                         threads=threads)
    return _replay(Bundle.load(directory), runner.detector, TOLERANCES[Precision.parse(precision)])


def on_device_accuracy(directory: Path, key: str, dataset: Any, *, board: str | None,
                       threads: int | None) -> dict[str, Any]:
    """mAP of the artifact on the validation set the host sent, measured here."""
    from edgekit.devices.runners import load_runner

    from edgekit.bench.api import _accuracy

    fmt, precision = key.split("/")
    runner = load_runner(directory, board=board, format=fmt, precision=precision,
                         threads=threads)
    t0 = time.perf_counter()
    accuracy = _accuracy(runner, dataset)
    accuracy.update(source="on device", seconds=time.perf_counter() - t0)
    return accuracy


def bench_artifact(directory: Path, key: str, plan: dict[str, Any], dataset: Any,
                   peaks: dict[int | None, dict[str, Any]]) -> dict[str, Any]:
    """One artifact: the timed run (thermal sampled throughout), golden replay, accuracy, peak."""
    from edgekit.bench import BenchSettings, bench

    from .peak import measure_peak
    from .thermal import Sampler

    spec = plan["settings"]
    settings = BenchSettings(runs=spec["runs"], duration_s=spec.get("duration_s"),
                             warmup=spec["warmup"], seed=spec.get("seed", 0))
    fmt, precision = key.split("/")
    start = last = time.perf_counter()

    def heartbeat(reading: dict[str, Any]) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last < HEARTBEAT_S and now - start > HEARTBEAT_S:
            return  # the first beat at once (the run is going), then every HEARTBEAT_S
        last = now
        temps = reading["temperature_c"]
        hottest = f", {max(temps.values()):.1f} °C" if temps else ""
        emit("progress", artifact=key, message=f"{key}: measuring, {now - start:.0f} s{hottest}")

    with Sampler(interval_s=plan.get("thermal_interval_s", 1.0), on_reading=heartbeat) as temp:
        result = bench(directory, settings=settings, board=plan.get("board"), format=fmt,
                       precision=precision, threads=plan.get("threads"))
    out = result.to_dict()
    out["thermal"] = temp.report()
    board, threads = plan.get("board"), result.threads
    if plan.get("golden"):
        out["golden"] = _guarded(golden_check, directory, key, board=board, threads=threads)
    if dataset is not None:
        emit("progress", artifact=key, message=f"{key}: mAP on {len(dataset)} images")
        measured = _guarded(on_device_accuracy, directory, key, dataset, board=board,
                            threads=threads)
        out["accuracy"] = measured if "map50_95" in measured else \
            {**(out.get("accuracy") or {}), "on_device_error": measured.get("reason")}
    if not plan.get("peak_seconds"):
        out["peak"] = {"threads": threads, "error": "not probed (--peak-seconds 0)"}
        return out
    if threads not in peaks:
        emit("progress", artifact=key, message=f"matmul peak probe, {threads} threads")
        peaks[threads] = measure_peak(threads or os.cpu_count() or 1,
                                      seconds=plan.get("peak_seconds", 1.0))
    out["peak"] = peaks[threads]
    return out


def _guarded(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A secondary figure that fails is reported as its reason, never losing the latency."""
    from edgekit.errors import EdgekitError

    try:
        return call(*args, **kwargs)
    except EdgekitError as exc:
        return {"ok": False, "reason": exc.message}
    except Exception as exc:  # noqa: BLE001 - any runtime failure is reported, not raised
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}


def second_peak_windows(plan: dict[str, Any], peaks: dict[int | None, dict[str, Any]]) -> None:
    """Probes the peak once more per thread count, after the runs, and emits the better one.

    A single one-second window can land on a moment another process takes the cores (a
    busy host, a board's background job); the best of two windows apart is the peak.
    """
    from .peak import measure_peak

    for threads, first in peaks.items():
        emit("progress", artifact=None, message=f"matmul peak probe again, {threads} threads")
        again = measure_peak(threads or os.cpu_count() or 1,
                             seconds=plan.get("peak_seconds", 1.0))
        best = max((first, again), key=lambda p: p.get("gflops") or 0.0)
        emit("peak", threads=threads, peak={**best, "windows": [
            p.get("gflops") for p in (first, again)]})


def run(directory: Path, plan: dict[str, Any]) -> int:
    from edgekit.devices.flash.agent import _verify_staged

    bad = _verify_staged(directory, plan)
    if bad:
        emit("error", artifact=None, stage="verify",
             reason=f"sha256 mismatch on the device: {', '.join(bad)}")
        emit("done", protocol=PROTOCOL)
        return 1
    prune_manifest(directory, set(plan["files"]))
    dataset = None
    if plan.get("val"):
        from edgekit.data.dataset import load_dataset

        dataset = load_dataset(directory / plan["val"])
    peaks: dict[int | None, dict[str, Any]] = {}
    failed = 0
    for key in plan["artifacts"]:
        emit("progress", artifact=key, message=f"{key}: loading and first inference")
        try:
            result = bench_artifact(directory, key, plan, dataset, peaks)
        except Exception as exc:  # noqa: BLE001 - one artifact's failure is its own row
            failed += 1
            emit("error", artifact=key, reason=getattr(exc, "message", None) or
                 f"{type(exc).__name__}: {exc}")
            continue
        emit("result", artifact=key, result=result)
    second_peak_windows(plan, peaks)
    emit("done", protocol=PROTOCOL)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgekit-onboard-bench")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--plan", required=True)
    args = parser.parse_args(argv)
    plan = json.loads(Path(args.plan).read_text())
    if plan.get("protocol") != PROTOCOL:
        emit("error", artifact=None, reason=f"the host speaks protocol {plan.get('protocol')}, "
             f"this device's edgekit speaks {PROTOCOL}: install the same edgekit on both")
        emit("done", protocol=PROTOCOL)
        return 1
    return run(Path(args.dir), plan)


if __name__ == "__main__":
    sys.exit(main())
