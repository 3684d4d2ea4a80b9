"""What a board says about its temperature, clocks and throttling, read where it is exposed.

Sources, each optional (a board exposes some, a container none):

- any Linux: ``/sys/class/thermal/thermal_zone*/{type,temp}`` (millidegrees C) and
  ``/sys/devices/system/cpu/cpu*/cpufreq/{scaling_cur_freq,cpuinfo_max_freq}`` (kHz);
- Raspberry Pi: ``vcgencmd get_throttled`` (a bit mask: now / since boot);
- Jetson: ``nvpmodel -q`` (the power model) and the GPU's devfreq ``cur_freq``/``max_freq``.

A source that is absent is reported as ``"not exposed"``; no figure is ever guessed. During a
sustained run a :class:`Sampler` thread reads the sources every second, so the report holds
the peak temperature and the lowest clock seen, not only the two ends.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOT_EXPOSED = "not exposed"

# vcgencmd get_throttled bits (Raspberry Pi firmware documentation, "get_throttled").
THROTTLE_BITS = {
    0: "under-voltage now", 1: "arm frequency capped now", 2: "throttled now",
    3: "soft temperature limit now", 16: "under-voltage occurred",
    17: "arm frequency capping occurred", 18: "throttling occurred",
    19: "soft temperature limit occurred",
}
_NOW_MASK = 0xF


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the readings come from; tests point these at a copy of a board's sysfs."""

    thermal: Path = Path("/sys/class/thermal")
    cpu: Path = Path("/sys/devices/system/cpu")
    devfreq: Path = Path("/sys/class/devfreq")
    commands: bool = True  # run vcgencmd / nvpmodel where they are installed


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _number(path: Path) -> float | None:
    text = _read(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def temperatures(sources: Sources) -> dict[str, float]:
    """Zone name -> degrees C of every readable thermal zone."""
    out: dict[str, float] = {}
    for zone in sorted(sources.thermal.glob("thermal_zone*")):
        milli = _number(zone / "temp")
        if milli is None:
            continue  # some zones (e.g. disabled sensors) fail to read: skip, never guess
        name = _read(zone / "type") or zone.name
        out[name if name not in out else f"{name}:{zone.name}"] = milli / 1000.0
    return out


def cpu_clocks(sources: Sources) -> dict[str, float]:
    """Current MHz per CPU (``cpu0`` ...) and the rated maximum (``max``), where exposed."""
    out: dict[str, float] = {}
    for cpu in sorted(sources.cpu.glob("cpu[0-9]*")):
        khz = _number(cpu / "cpufreq" / "scaling_cur_freq")
        if khz is not None:
            out[cpu.name] = khz / 1000.0
        rated = _number(cpu / "cpufreq" / "cpuinfo_max_freq")
        if rated is not None:
            out["max"] = max(out.get("max", 0.0), rated / 1000.0)
    return out


def gpu_clocks(sources: Sources) -> dict[str, float]:
    """Current and maximum MHz of each devfreq device (a Jetson's GPU is one), if any."""
    out: dict[str, float] = {}
    for device in sorted(sources.devfreq.glob("*")):
        cur, top = _number(device / "cur_freq"), _number(device / "max_freq")
        if cur is not None:
            out[device.name] = cur / 1e6
        if top is not None:
            out[f"{device.name}:max"] = top / 1e6
    return out


def _command(argv: list[str], sources: Sources) -> str | None:
    if not sources.commands or shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def parse_throttled(text: str) -> dict[str, Any]:
    """Decodes ``throttled=0x50005`` into its raw value and named flags."""
    raw = text.strip().split("=", 1)[-1]
    value = int(raw, 16)
    flags = [name for bit, name in THROTTLE_BITS.items() if value & (1 << bit)]
    return {"raw": hex(value), "flags": flags, "now": bool(value & _NOW_MASK)}


def throttling(sources: Sources) -> dict[str, Any] | None:
    """The Pi firmware's throttle state, or None where vcgencmd is not installed."""
    text = _command(["vcgencmd", "get_throttled"], sources)
    if not text or "=" not in text:
        return None
    try:
        return parse_throttled(text)
    except ValueError:
        return None


def power_model(sources: Sources) -> str | None:
    """The Jetson's power model (``nvpmodel -q``, first line naming the mode), or None."""
    text = _command(["nvpmodel", "-q"], sources)
    if not text:
        return None
    for line in text.splitlines():
        if "Power Mode" in line:
            return line.split(":", 1)[-1].strip()
    return text.splitlines()[0].strip()


def snapshot(sources: Sources | None = None) -> dict[str, Any]:
    """One reading of every exposed source."""
    sources = sources or Sources()
    return {"temperature_c": temperatures(sources), "cpu_mhz": cpu_clocks(sources),
            "gpu_mhz": gpu_clocks(sources), "throttled": throttling(sources),
            "power_model": power_model(sources)}


@dataclass
class Sampler:
    """Reads :func:`snapshot` every ``interval_s`` in a thread while a run goes on.

    Example:
        with Sampler() as sampler:
            run()
        report = sampler.report()
    """

    interval_s: float = 1.0
    sources: Sources = field(default_factory=Sources)
    on_reading: Callable[[dict[str, Any]], None] | None = None
    readings: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Sampler:
        self.readings.append(snapshot(self.sources))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            reading = snapshot(self.sources)
            self.readings.append(reading)
            if self.on_reading is not None:
                self.on_reading(reading)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.readings.append(snapshot(self.sources))

    def report(self) -> dict[str, Any]:
        return summarize(self.readings)


def _series(readings: list[dict[str, Any]], key: str) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {}
    for reading in readings:
        for name, value in reading[key].items():
            series.setdefault(name, []).append(value)
    return series


def summarize(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """Start, peak and end temperature per zone; start, lowest and end clocks; throttling.

    Each part absent on the board is the string ``"not exposed"``.
    """
    first, last = readings[0], readings[-1]
    temps = {name: {"start": v[0], "max": max(v), "end": v[-1]}
             for name, v in _series(readings, "temperature_c").items()}
    cpu = _series(readings, "cpu_mhz")
    rated = cpu.pop("max", [None])[0]
    clocks = {name: {"start": v[0], "min": min(v), "end": v[-1]} for name, v in cpu.items()}
    gpu = {name: {"start": v[0], "min": min(v), "end": v[-1]}
           for name, v in _series(readings, "gpu_mhz").items() if not name.endswith(":max")}
    throttled = [r["throttled"] for r in readings if r["throttled"] is not None]
    out: dict[str, Any] = {
        "samples": len(readings),
        "temperature_c": temps or NOT_EXPOSED,
        "cpu_mhz": {"rated_max": rated, "per_cpu": clocks} if clocks else NOT_EXPOSED,
        "gpu_mhz": gpu or NOT_EXPOSED,
        "power_model": last["power_model"] or first["power_model"] or NOT_EXPOSED,
    }
    if throttled:
        out["throttling"] = {"start": throttled[0], "end": throttled[-1],
                             "during_run": any(t["now"] for t in throttled)}
    elif clocks and rated:
        # No firmware flag (not a Pi): a core clocked well under its rated maximum while
        # loaded is the sign of thermal or power capping that a board exposes.
        low = min(c["min"] for c in clocks.values())
        out["throttling"] = {"source": "cpufreq", "lowest_mhz": low, "rated_max_mhz": rated,
                             "below_rated": low < 0.9 * rated}
    else:
        out["throttling"] = NOT_EXPOSED
    return out
