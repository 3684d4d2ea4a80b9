"""What this machine is: board, runtimes, execution providers and OpenVINO devices.

Facts are gathered once (:func:`gather_facts`, file paths injectable so tests can fake a
Jetson or a Raspberry Pi) and matched against each board profile's ``detect`` table
(:func:`detect_board`). Nothing is probed at import time.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edgekit.errors import UnknownNameError

from .profiles import BoardProfile, profiles

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "aarch64"}


@dataclass(frozen=True, kw_only=True)
class Paths:
    """Files board detection reads; tests point these at fakes."""

    device_tree_model: Path = Path("/proc/device-tree/model")
    firmware_model: Path = Path("/sys/firmware/devicetree/base/model")
    tegra_release: Path = Path("/etc/nv_tegra_release")
    cpuinfo: Path = Path("/proc/cpuinfo")


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What was found on the machine (or given by a test)."""

    arch: str
    cores: int
    cpu_model: str = ""
    device_tree_model: str | None = None
    tegra_release: str | None = None
    runtimes: Mapping[str, str] = field(default_factory=dict)
    ort_providers: tuple[str, ...] = ()
    openvino_devices: tuple[str, ...] = ()
    tensorrt_version: str | None = None
    gpu_name: str | None = None

    def has_runtime(self, package: str) -> bool:
        return package in self.runtimes

    def to_dict(self) -> dict[str, object]:
        return {
            "arch": self.arch, "cores": self.cores, "cpu_model": self.cpu_model,
            "device_tree_model": self.device_tree_model, "tegra_release": self.tegra_release,
            "runtimes": dict(self.runtimes), "ort_providers": list(self.ort_providers),
            "openvino_devices": list(self.openvino_devices),
            "tensorrt_version": self.tensorrt_version, "gpu_name": self.gpu_name,
        }


@dataclass(frozen=True)
class Detection:
    """The board profile this machine matches and why."""

    profile: BoardProfile
    reason: str


def normalise_arch(machine: str) -> str:
    machine = machine.lower()
    return _ARCH_ALIASES.get(machine, machine)


def _read_text(path: Path) -> str | None:
    try:
        # Device-tree strings end with a NUL byte.
        return path.read_bytes().decode("utf-8", "replace").strip("\x00 \n") or None
    except OSError:
        return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name from /proc/cpuinfo (x86 'model name', Arm 'Model')."""
    text = _read_text(cpuinfo) or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def installed_runtimes() -> dict[str, str]:
    """pip package -> version of each runtime whose module can be found (not imported), of
    every runtime a backend declares (edgekit.backends)."""
    from edgekit.backends import runtimes

    found = {}
    for runtime in runtimes():
        if importlib.util.find_spec(runtime.top_module) is None:
            continue
        try:
            found[runtime.package] = version(runtime.package)
        except PackageNotFoundError:
            continue  # e.g. onnxruntime-gpu listed while plain onnxruntime is installed
    return found


def ort_providers() -> tuple[str, ...]:
    """onnxruntime's available execution providers (empty when it is not installed)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def openvino_devices() -> tuple[str, ...]:
    """OpenVINO's available devices (empty when it is not installed)."""
    if importlib.util.find_spec("openvino") is None:
        return ()
    import openvino

    return tuple(openvino.Core().available_devices)


def tensorrt_version() -> str | None:
    """TensorRT's version from its Python package or its libnvinfer library file."""
    try:
        return version("tensorrt")
    except PackageNotFoundError:
        pass
    for folder in (Path("/usr/lib/aarch64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu")):
        libs = sorted(folder.glob("libnvinfer.so.*.*"))
        if libs:
            return libs[-1].name.removeprefix("libnvinfer.so.")
    return None


def gather_facts(*, paths: Paths = Paths(), probe: bool = True) -> Facts:
    """Reads this machine's facts.

    Args:
        paths: Where the device-tree and release files are (tests pass fakes).
        probe: Also import onnxruntime/OpenVINO to list their providers/devices.
    """
    model = _read_text(paths.device_tree_model) or _read_text(paths.firmware_model)
    tegra = _read_text(paths.tegra_release)
    providers = ort_providers() if probe else ()
    trt = tensorrt_version() if "TensorrtExecutionProvider" in providers else None
    return Facts(
        arch=normalise_arch(platform.machine()),
        cores=os.cpu_count() or 1,
        cpu_model=cpu_model(paths.cpuinfo),
        device_tree_model=model,
        tegra_release=tegra.splitlines()[0] if tegra else None,
        runtimes=installed_runtimes(),
        ort_providers=providers,
        openvino_devices=openvino_devices() if probe else (),
        tensorrt_version=trt,
        gpu_name=model if tegra else None,  # a Jetson's GPU is fixed by its module
    )


# detect-table key -> (how specific a match it is, matcher). A device-tree model names the
# exact board; an OpenVINO device names an accelerator; an arch only names a CPU family.
MATCHERS: dict[str, tuple[int, Callable[[str, Facts], bool]]] = {
    "device_tree_model": (3, lambda want, f: bool(f.device_tree_model)
                          and want.lower() in f.device_tree_model.lower()),
    "openvino_device": (2, lambda want, f: any(d.split(".")[0] == want
                                               for d in f.openvino_devices)),
    "arch": (1, lambda want, f: f.arch == want),
}


def _score(profile: BoardProfile, facts: Facts) -> tuple[int, int] | None:
    if not profile.detect:
        return None
    best = 0
    for key, want in profile.detect.items():
        if key not in MATCHERS:
            return None
        rank, matches = MATCHERS[key]
        if not matches(str(want), facts):
            return None
        best = max(best, rank)
    # Among equal ranks, the longer pattern is the more specific ("Orin Nano" vs "Nano").
    return best, max(len(str(v)) for v in profile.detect.values())


def detect_board(facts: Facts, *, boards: Mapping[str, BoardProfile] | None = None) -> Detection:
    """Matches facts against the board profiles' ``detect`` tables.

    Raises:
        UnknownNameError: no profile matches (an architecture edgekit has no profile for).
    """
    boards = boards if boards is not None else profiles()
    scored = [(s, p) for p in boards.values() if (s := _score(p, facts)) is not None]
    if not scored:
        raise UnknownNameError(
            f"No board profile matches this machine ({facts.arch}, "
            f"{facts.device_tree_model or 'no device tree'}).",
            hint=f"Pass --board with one of: {', '.join(boards)}.",
        )
    (rank, _), profile = max(scored, key=lambda item: item[0])
    keys = ", ".join(f"{k}={v!r}" for k, v in profile.detect.items())
    reason = f"matched {keys}"
    if facts.tegra_release and profile.family != "jetson":
        reason += f" (a Jetson, {facts.tegra_release[:40]}, without a profile of its own)"
    return Detection(profile, reason)


__all__ = ["Detection", "Facts", "Paths", "detect_board", "gather_facts", "installed_runtimes"]
