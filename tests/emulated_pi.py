"""An emulated Raspberry Pi 5: Debian bookworm arm64 and its CPython 3.11 under qemu-user.

Raspberry Pi OS bookworm is Debian 12 arm64 with Python 3.11. This module builds that user
space here (x86_64) and runs it with ``qemu-aarch64-static -cpu cortex-a76`` (the Pi 5's core),
with edgekit from this working tree and the Pi's runtimes (onnxruntime, LiteRT) installed as
their real aarch64 wheels. On it, ``edgekit devices`` says ``rpi5`` with no override: the board
files edgekit reads (``/proc/device-tree/model``, ``/proc/cpuinfo``) are the Pi 5's.

What it proves: the aarch64 binaries (LiteRT with XNNPACK, onnxruntime, numpy, OpenCV) run
edgekit's code paths and give these numerics; the flash agent and health check work under the
Pi's Python. What it does NOT prove: speed. Every instruction is translated (about 100x slower
than the host), so a latency measured here says nothing about a Pi.

Use from Python (tests, benchmarks)::

    from emulated_pi import EmulatedPi
    pi = EmulatedPi.ensure()       # builds or reuses the cached root; installs this tree
    pi.run("-m", "edgekit", "devices")            # a CompletedProcess; says rpi5
    pi.python                      # the wrapper: give it as a flash target's remote Python
    pi.edgekit                     # a script that runs `python -m edgekit` on the Pi

As a device behind a real sshd (tests/devices/flash_env.py)::

    target = lab.target(lab.server(), "/tmp/pi-root", python=str(pi.python))

In pytest: the session fixture ``emulated_pi`` (tests/conftest.py) returns the EmulatedPi,
built once per session, and skips saying what to install where qemu-user-static or
debootstrap is missing. Mark such tests ``@pytest.mark.emulated_pi``.

From a shell::

    .venv/bin/python tests/emulated_pi.py build      # prints the wrapper's path
    .venv/bin/python tests/emulated_pi.py python -c 'import platform; print(platform.machine())'
    .venv/bin/python tests/emulated_pi.py edgekit devices

How it is built (three cached layers under ``$EDGEKIT_EMULATED_PI_CACHE``, default
``~/.cache/edgekit/emulated-pi``, each keyed by a hash of what goes into it):

- ``root-<hash>``: ``debootstrap --foreign --arch=arm64 --variant=minbase --include=python3``,
  every .deb unpacked with ``dpkg -x`` (binfmt_misc is not available, so debootstrap's second
  stage cannot run), then the Pi 5's board files written into it.
- ``site-<hash>``: the device's Python dependencies as aarch64 wheels (``pip install --target
  --platform manylinux_2_x_aarch64``), pinned by constraints.txt: the same versions as the
  host, so numerical differences come from the architecture, not from a version.
- ``edgekit-<hash>``: a virtual environment whose ``bin/python`` is the wrapper; edgekit
  built as a wheel from this working tree (so the Pi runs exactly what `pip install` ships).

The root and site layers are built in parallel (about 4 minutes from nothing, mostly
downloads); the edgekit layer takes seconds and is rebuilt whenever the source changes.

Why the Pi's files are seen without a mount namespace: qemu's ``-L ROOT`` makes the emulated
program open ``ROOT/<path>`` instead of ``<path>`` wherever that file exists. So
``ROOT/proc/cpuinfo`` (an Arm cpuinfo: onnxruntime and LiteRT crash with SIGSEGV on the host's
x86 one) and ``ROOT/proc/device-tree/model`` are what the Pi's programs read, while every other
path (/tmp, the home directory, sockets) is the host's: no root privileges are needed.
Directories of the Debian root that would hide the host's (/tmp, /root, /home, /run, /dev) are
removed for that reason.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
RECIPE_VERSION = 1  # bump to rebuild every cached layer
SUITE = "bookworm"  # Raspberry Pi OS bookworm = Debian 12: Python 3.11.2, glibc 2.36
DEBIAN_PACKAGES = ("python3",)
PYTHON = "3.11"
GLIBC_MINOR = 36  # wheels tagged manylinux_2_17 .. manylinux_2_36 run on bookworm
DEVICE_EXTRAS = ("onnxruntime", "litert", "bench")  # what a Pi installs: pip install edgekit[..]
QEMU_CPU = "cortex-a76"  # the Raspberry Pi 5's core (BCM2712)
MODEL = "Raspberry Pi 5 Model B Rev 1.0"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCE_PARTS = ("edgekit", "export", "devices", "pyproject.toml", "setup.py", "README.md")
# Directories of the Debian root that would hide the host's under qemu's -L (see above).
SHADOWING = ("tmp", "var/tmp", "root", "home", "run", "dev", "mnt", "media")
KEEP = 2  # cached versions of each layer


def _pi5_cpuinfo(cores: int = 4) -> str:
    """The Pi 5's /proc/cpuinfo: four Cortex-A76 r4p1 cores (MIDR 0x414fd0b1)."""
    core = ("BogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 "
            "atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n")
    cpus = "".join(f"processor\t: {i}\n{core}\n" for i in range(cores))
    return f"{cpus}Revision\t: d04170\nSerial\t\t: 0000000000000000\nModel\t\t: {MODEL}\n"


class Unavailable(Exception):
    """The emulated Pi cannot be built on this machine (a tool is missing); says what to do."""


def qemu() -> str:
    path = shutil.which("qemu-aarch64-static")
    if not path:
        raise Unavailable("needs qemu-aarch64-static (Debian qemu-user-static): run `make "
                          "system-deps` as root, or `sudo apt-get install qemu-user-static "
                          "debootstrap`")
    return path


def debootstrap() -> str:
    path = shutil.which("debootstrap") or ("/usr/sbin/debootstrap"
                                           if Path("/usr/sbin/debootstrap").exists() else None)
    if not path or not shutil.which("dpkg"):
        raise Unavailable("needs debootstrap and dpkg to build the arm64 root: run `make "
                          "system-deps` as root, or `sudo apt-get install debootstrap`")
    return path


def cache_dir() -> Path:
    if os.environ.get("EDGEKIT_EMULATED_PI_CACHE"):
        return Path(os.environ["EDGEKIT_EMULATED_PI_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgekit" / "emulated-pi"


def mirror() -> str:
    """The Debian mirror: $EDGEKIT_DEBIAN_MIRROR, else the host's own Debian mirror, else
    deb.debian.org."""
    if os.environ.get("EDGEKIT_DEBIAN_MIRROR"):
        return os.environ["EDGEKIT_DEBIAN_MIRROR"]
    texts = [p.read_text(errors="replace") for p in (
        *Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list"))
        if p.is_file()]
    for uri in re.findall(r"(?:^URIs:|^deb)\s+(\S+)", "\n".join(texts), re.M):
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return DEFAULT_MIRROR


def requirements() -> list[str]:
    """What `pip install edgekit[onnxruntime,litert,bench]` installs, read from pyproject."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(r for e in DEVICE_EXTRAS for r in extras[e])]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _source_files() -> Iterator[Path]:
    for part in SOURCE_PARTS:
        path = REPO / part
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file()
                              and "__pycache__" not in p.parts and ".egg-info" not in str(p)
                              and p.suffix != ".pyc")


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder per layer at a time (two test sessions on one machine wait, not clash)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], log: Path, **kwargs: object) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, argv))}\n")
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{argv[0]} failed (exit {proc.returncode}); log {log}:\n{tail}")


def _layer(kind: str, key: str, build) -> Path:
    """Returns the cached layer ``<kind>-<key>``, building it (into a temporary directory
    renamed into place: a crash leaves no half layer) when it is missing."""
    final = cache_dir() / f"{kind}-{key}"
    if final.is_dir():
        os.utime(final)  # newest-used first when pruning
        return final
    with _locked(kind):
        if final.is_dir():
            return final
        work = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=cache_dir()))
        try:
            start = time.monotonic()
            build(work, work / "build.log", final)
            work.chmod(0o755)  # mkdtemp's 0700 would lock out another user's sshd session
            (work / "built.json").write_text(json.dumps(
                {"seconds": round(time.monotonic() - start, 1), "key": key,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        _prune(kind, keep=final)
    return final


def _prune(kind: str, *, keep: Path) -> None:
    old = sorted((p for p in cache_dir().glob(f"{kind}-*") if p != keep and p.is_dir()),
                 key=lambda p: p.stat().st_mtime, reverse=True)
    for path in old[KEEP - 1:]:
        shutil.rmtree(path, ignore_errors=True)


def root_key() -> str:
    return _digest(RECIPE_VERSION, SUITE, DEBIAN_PACKAGES, _pi5_cpuinfo(), MODEL, SHADOWING)


def _build_root(work: Path, log: Path, final: Path) -> None:
    root = work / "root"
    debs = cache_dir() / "debs"  # downloaded packages survive a recipe change
    debs.mkdir(parents=True, exist_ok=True)
    _run([debootstrap(), "--arch=arm64", "--foreign", "--variant=minbase",
          f"--include={','.join(DEBIAN_PACKAGES)}", f"--cache-dir={debs}", SUITE, str(root),
          mirror()], log)
    archives = sorted((root / "var/cache/apt/archives").glob("*.deb"))
    # The second stage (which would configure these) needs to run arm64 programs at boot;
    # unpacking is all a Python needs.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda deb: _run(["dpkg", "-x", str(deb), str(root)], log), archives))
    for deb in archives:
        deb.unlink()
    for name in SHADOWING:
        path = root / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    # The Pi 5's board files, read by edgekit's detection and by the runtimes' CPU probes.
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(_pi5_cpuinfo())
    (root / "proc/device-tree/model").write_bytes(MODEL.encode() + b"\0")
    firmware = root / "sys/firmware/devicetree/base"
    firmware.mkdir(parents=True, exist_ok=True)
    (firmware / "model").write_bytes(MODEL.encode() + b"\0")
    # Hide the host's x86 packages from the Pi's Python (site adds this path when it exists).
    (root / f"usr/local/lib/python{PYTHON}/dist-packages").mkdir(parents=True, exist_ok=True)
    if not (root / f"usr/bin/python{PYTHON}").is_file():
        raise RuntimeError(f"no usr/bin/python{PYTHON} in the unpacked root; see {log}")


def _constraints() -> str:
    path = REPO / "constraints.txt"
    return path.read_text() if path.is_file() else ""


def site_key() -> str:
    return _digest(RECIPE_VERSION, PYTHON, GLIBC_MINOR, requirements(), _constraints())


def _build_site(work: Path, log: Path, final: Path) -> None:
    platforms = [f"manylinux_2_{m}_aarch64" for m in range(17, GLIBC_MINOR + 1)]
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(work / "site"),
            "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
            "--abi", f"cp{PYTHON.replace('.', '')}", "--platform", "manylinux2014_aarch64",
            *(a for p in platforms for a in ("--platform", p)), *requirements()]
    if (REPO / "constraints.txt").is_file():
        argv[4:4] = ["-c", str(REPO / "constraints.txt")]
    _run(argv, log)


def _build_edgekit(root: Path, site: Path):
    def build(work: Path, log: Path, final: Path) -> None:
        src = work / "src"
        src.mkdir()
        for part in SOURCE_PARTS:  # a copy: building in the tree would leave build/ there
            path = REPO / part
            if path.is_dir():
                shutil.copytree(path, src / part, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc", "*.egg-info"))
            elif path.is_file():
                shutil.copy2(path, src / part)
        packages = work / f"lib/python{PYTHON}/site-packages"
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
              "--no-build-isolation", "--target", str(packages), str(src)], log)
        shutil.rmtree(src)
        # The dependencies stay in the shared site layer: a .pth line puts them on sys.path.
        (packages / "zz_emulated_pi_deps.pth").write_text(f"{site}\n")
        shutil.rmtree(packages / "bin", ignore_errors=True)  # x86 console scripts
        (work / "pyvenv.cfg").write_text(
            f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON}\n")
        _write_wrappers(work, final, root)
    return build


def _write_wrappers(work: Path, venv: Path, root: Path) -> None:
    """bin/python: aarch64 CPython under qemu; argv[0] (qemu -0) is the wrapper itself, so
    sys.executable names it, the venv's pyvenv.cfg is found, and a child process started
    with sys.executable (the flash agent's health check) is emulated too.

    Written into ``work``; the paths inside are ``venv``'s, where ``work`` is renamed to.
    """
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = venv / "bin" / "python"
    (bin_dir / "python").write_text(
        "#!/bin/sh\n"
        "# An emulated Raspberry Pi 5's Python (tests/emulated_pi.py): aarch64 CPython from\n"
        "# Debian bookworm under qemu-user. The host's Python settings must not leak into it.\n"
        "unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE VIRTUAL_ENV\n"
        f"exec {qemu()} -cpu {QEMU_CPU} -L {root} -0 {python} "
        f"{root}/usr/bin/python{PYTHON} \"$@\"\n")
    # -P: like a console script, never import from the working directory (a checkout there
    # holds an edgekit/ folder that is not the installed package).
    (bin_dir / "edgekit").write_text(f"#!/bin/sh\nexec {python} -P -m edgekit \"$@\"\n")
    for script in (bin_dir / "python", bin_dir / "edgekit"):
        script.chmod(0o755)
    for alias in ("python3", f"python{PYTHON}"):
        (bin_dir / alias).unlink(missing_ok=True)
        (bin_dir / alias).symlink_to("python")


@dataclass(frozen=True)
class EmulatedPi:
    """One built emulated Pi 5: the Debian root, the wheels, and the venv with edgekit."""

    root: Path
    site: Path
    venv: Path

    @classmethod
    def ensure(cls) -> EmulatedPi:
        """Builds what is missing (or out of date) and returns the device.

        Raises:
            Unavailable: qemu-user-static or debootstrap is not installed.
            RuntimeError: a build step failed (its log's tail is in the message).
        """
        qemu()
        root_dir = cache_dir() / f"root-{root_key()}"
        if not root_dir.is_dir():
            debootstrap()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            root_job = pool.submit(_layer, "root", root_key(), _build_root)
            site_job = pool.submit(_layer, "site", site_key(), _build_site)
            root, site = root_job.result() / "root", site_job.result() / "site"
        # This file too: a changed wrapper is a new layer (seconds), a changed recipe is not.
        this = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        key = _digest(RECIPE_VERSION, source_hash(), this, str(root), str(site), qemu())
        venv = _layer("edgekit", key, _build_edgekit(root, site))
        return cls(root=root, site=site, venv=venv)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def edgekit(self) -> Path:
        return self.venv / "bin" / "edgekit"

    def run(self, *args: str, timeout: float = 600, check: bool = True,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Runs the Pi's Python with ``args``; text output captured.

        The working directory defaults to the venv: ``-m`` imports from the working directory
        first, and a checkout holds an edgekit/ folder that is not the installed package.
        """
        kwargs.setdefault("cwd", self.venv)
        proc = subprocess.run([str(self.python), *args], capture_output=True, text=True,
                              timeout=timeout, **kwargs)
        if check and proc.returncode:
            raise RuntimeError(f"emulated Pi: python {' '.join(args)} exited "
                               f"{proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def build_seconds(self) -> dict[str, float]:
        """How long each cached layer took to build (from nothing, when first built)."""
        found = {}
        for name, layer in (("root", self.root.parent), ("site", self.site.parent),
                            ("edgekit", self.venv)):
            info = layer / "built.json"
            if info.is_file():
                found[name] = json.loads(info.read_text())["seconds"]
        return found


def write_outputs(bundle_dir: str | Path, images: str | Path, out: str | Path) -> None:
    """Runs every artifact of a bundle that passed its gate, on whatever machine runs this.

    The same code runs on the host (x86) and on the emulated Pi (``python emulated_pi.py
    outputs ...``), so a difference comes from the binaries alone. Writes ``out`` (npz):
    ``<key>::raw`` the model's output on the bundle's golden inputs (preprocessed tensors),
    and ``<key>::xyxy|conf|cls|count`` the
    detections on the BGR images of ``images`` (npz, key ``images``), concatenated.
    """
    import numpy as np

    from edgekit.bundle import Bundle
    from edgekit.detector import Detector

    bundle = Bundle.load(bundle_dir)
    with np.load(images) as data:
        frames = list(data["images"])
    golden = bundle.manifest.provenance.parity.get("golden")
    with np.load(bundle.path / golden) as data:
        tensors = data["inputs"]
    found: dict[str, np.ndarray] = {}
    for artifact in bundle.manifest.artifacts:
        if (artifact.accuracy or {}).get("gate") == "failed":
            continue
        detector = Detector(bundle, artifact)
        # In the manifest's layout, as the Detector feeds it (the backend transposes for NHWC).
        raw = [np.asarray(detector.backend.run(detector.feed(np.ascontiguousarray(t)))[0])
               for t in tensors]
        dets = [detector(frame) for frame in frames]
        key = artifact.key
        found[f"{key}::raw"] = np.stack(raw).astype(np.float32)
        found[f"{key}::xyxy"] = np.concatenate([d.xyxy for d in dets]).reshape(-1, 4)
        found[f"{key}::conf"] = np.concatenate([d.confidence for d in dets])
        found[f"{key}::cls"] = np.concatenate([d.class_id for d in dets])
        found[f"{key}::count"] = np.array([len(d.xyxy) for d in dets])
        found[f"{key}::executed_on"] = np.array(detector.backend.executed_on)
    np.savez(out, **found)


def compare_outputs(bundle_dir: str | Path, reference: str | Path,
                    candidate: str | Path) -> list[dict[str, object]]:
    """Per artifact: the largest |difference| between two machines' raw outputs, whether it
    is within the health check's tolerance for its precision, each machine's distance from
    the reference machine's fp32 ONNX output, and detection agreement (the accuracy gate's:
    reference detections matched by class at IoU >= 0.5; ``agreement_reverse`` the other
    way)."""
    import numpy as np
    from edgekit.devices.flash.health import TOLERANCES, compare
    from edgekit.export.gate import agreement

    from edgekit.bundle import Bundle
    from edgekit.types import Detections

    bundle = Bundle.load(bundle_dir)
    conf = bundle.manifest.output.conf_threshold

    def detections(data, key: str) -> dict[int, Detections]:
        ends = np.cumsum(data[f"{key}::count"])
        parts = zip(np.split(data[f"{key}::xyxy"], ends[:-1]),
                    np.split(data[f"{key}::conf"], ends[:-1]),
                    np.split(data[f"{key}::cls"], ends[:-1]), strict=True)
        return {i: Detections(xyxy=x, confidence=c, class_id=k)
                for i, (x, c, k) in enumerate(parts)}

    rows = []
    with np.load(reference) as ref, np.load(candidate) as cand:
        fp32 = ref["onnx/fp32::raw"] if "onnx/fp32::raw" in ref.files else None

        def off_fp32(raw: np.ndarray) -> float | None:  # the precision's own error, for scale
            return float(np.abs(raw - fp32).max()) if fp32 is not None else None

        for artifact in bundle.manifest.artifacts:
            key = artifact.key
            if f"{key}::raw" not in ref.files:
                continue
            tolerance = TOLERANCES[artifact.precision]
            figures = compare(cand[f"{key}::raw"], ref[f"{key}::raw"], tolerance)
            ref_dets, cand_dets = detections(ref, key), detections(cand, key)
            rows.append({
                "artifact": key, "reference_on": str(ref[f"{key}::executed_on"]),
                "candidate_on": str(cand[f"{key}::executed_on"]),
                "max_abs_diff": figures.get("max_abs_diff"), "within": figures.get("within"),
                "tolerance": f"atol {tolerance.atol} rtol {tolerance.rtol}",
                "within_tolerance": figures["ok"],
                "reference_vs_fp32": off_fp32(ref[f"{key}::raw"]),
                "candidate_vs_fp32": off_fp32(cand[f"{key}::raw"]),
                "detections": [int(ref[f"{key}::count"].sum()),
                               int(cand[f"{key}::count"].sum())],
                "agreement": agreement(ref_dets, cand_dets, conf=conf),
                "agreement_reverse": agreement(cand_dets, ref_dets, conf=conf)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or reuse the device; print its Python wrapper")
    for name in ("python", "edgekit"):
        p = sub.add_parser(name, help=f"run the Pi's {name} with the remaining arguments")
        p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("outputs", help="run a bundle's artifacts here (see write_outputs)")
    for name in ("bundle", "images", "out"):
        p.add_argument(name)
    args = parser.parse_args(argv)
    if args.command == "outputs":  # runs on either machine: builds nothing
        write_outputs(args.bundle, args.images, args.out)
        return 0
    try:
        start = time.monotonic()
        pi = EmulatedPi.ensure()
    except Unavailable as exc:
        print(f"emulated Pi unavailable: {exc}", file=sys.stderr)
        return 2
    if args.command == "build":
        print(f"{pi.python}\n(ready in {time.monotonic() - start:.1f} s; layers built in "
              f"{pi.build_seconds()} s)", file=sys.stderr)
        print(pi.python)
        return 0
    program = pi.python if args.command == "python" else pi.edgekit
    return subprocess.run([str(program), *args.args]).returncode


if __name__ == "__main__":
    sys.exit(main())
