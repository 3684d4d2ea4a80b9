"""Host side of ``edgekit bench --on TARGET`` / ``--inventory FLEET``: measure on the boards.

For each device: flash's agent reads its facts; flash's preflight picks the board and the
artifact it would install (``--matrix``: every artifact of the bundle its runtimes load);
flash's verified transfer (resumable SFTP, sha256 checked on the device) sends them into
``<root>/bench-scratch/<version>``, which is never activated and never the ``current`` link;
``onboard.py`` runs there with the device's own Python, edgekit and runtimes and streams
events back; the scratch directory is removed afterwards. FLOPs are counted once on the host
from the bundle's ONNX graph; each result's utilisation is its achieved GFLOP/s over the
matmul peak the device measured at the same thread count.

One device's failure (unreachable, a runtime missing, a bench killed midway) is that device's
result, never an exception that stops the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit.backends import runtimes
from edgekit.bench.flops import bundle_flops, utilisation
from edgekit.bench.result import BenchResult
from edgekit.bundle import Artifact, Bundle
from edgekit.errors import BundleError, EdgekitError

from ..flash.deploy import (
    FlashResult,
    FlashSettings,
    _upload,
    agent_call,
    facts_args,
    install_agent,
    put_json,
)
from ..flash.fleet import Host
from ..flash.preflight import Plan, StagedFile, _device_problems, _files, choose_board, version_id
from ..flash.targets import FlashError, Target, Transport

SCRATCH = "bench-scratch"
MAX_VAL_BYTES = 200 << 20  # a validation set for a board: small by design
Progress = Callable[[str, str], None]  # (device name, message)


@dataclass(frozen=True, kw_only=True)
class RemoteSettings:
    """How to benchmark on devices.

    Attributes:
        runs: Timed runs per artifact (ignored when ``duration_s`` is set).
        duration_s: Sustained run of this many seconds per artifact (thermal sampled).
        warmup: Untimed runs after the first inference.
        threads: Inference threads (default: the board profile's, capped at its cores).
        matrix: Every artifact the board's runtimes load, not only the one it would run.
        board: Board profile for every device (default: detected on each device).
        val: A small validation set (COCO/YOLO folder) sent to and evaluated on the device.
        golden: Replay the bundle's golden inputs on the device.
        peak_seconds: Length of each of the two matmul peak probe windows (0: no probe).
        timeout_s: Limit on one device's whole on-device run.
        progress: Called with (device, message) as events arrive.
    """

    runs: int = 100
    duration_s: float | None = None
    warmup: int = 10
    threads: int | None = None
    matrix: bool = False
    board: str | None = None
    val: str | Path | None = None
    golden: bool = True
    peak_seconds: float = 1.0
    thermal_interval_s: float = 1.0
    timeout_s: float = 3600.0
    progress: Progress | None = None


@dataclass(kw_only=True)
class DeviceBench:
    """What one device measured, or why it could not."""

    device: str
    target: str
    status: str = "failed"  # ok | partial | refused | unreachable | failed
    reason: str | None = None
    hint: str | None = None
    board: str | None = None
    board_source: str | None = None
    emulated: bool = False
    chosen: str | None = None  # the artifact `edgekit flash` would install on this board
    runtimes: dict[str, str] = field(default_factory=dict)  # the device's runtime packages
    artifacts: list[str] = field(default_factory=list)
    results: list[BenchResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sent_bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [r.to_dict() for r in self.results]
        return data


def _say(settings: RemoteSettings, device: str, message: str) -> None:
    if settings.progress:
        settings.progress(device, message)


def select_artifacts(bundle: Bundle, facts: dict[str, Any], *, board: str | None,
                     matrix: bool) -> tuple[Any, str, Artifact, list[Artifact], dict[str, str]]:
    """(profile, why that profile, flash's choice, artifacts to measure, skipped -> reason).

    Without ``matrix``, the one artifact flash would install; a missing runtime refuses the
    device as flash's preflight would. With it, every artifact of the bundle the board runs,
    skipping (with the reason) those whose runtime the device lacks.

    Raises:
        FlashError: status ``refused``, listing every problem.
    """
    profile, source = choose_board(facts, board)
    try:
        chosen = profile.choose(bundle)
    except BundleError as exc:
        raise FlashError(exc.message, status="refused", hint=exc.hint) from None
    ranked = {pair: i for i, pair in enumerate(profile.prefer)}
    pool = sorted((a for a in bundle.manifest.artifacts if (a.format, a.precision) in ranked),
                  key=lambda a: ranked[(a.format, a.precision)]) if matrix else [chosen]
    problems = {a.key: _device_problems(facts, profile, a, health=True) for a in pool}
    common = set.intersection(*(set(p) for p in problems.values()))
    runnable = [a for a in pool if not problems[a.key]]
    skipped = {key: "; ".join(p) for key, p in problems.items() if p and not common}
    if common or not runnable:
        listed = sorted(common) if common else [p for ps in problems.values() for p in ps]
        raise FlashError(
            f"board '{profile.name}' ({source}) cannot benchmark "
            f"{', '.join(a.key for a in pool)}:\n  - " + "\n  - ".join(listed),
            status="refused", hint="Install what is missing on the device "
            "(samples/DEVICE_SETUP.md), or pass --matrix to measure what it can run.")
    return profile, source, chosen, runnable, skipped


def _val_files(val: str | Path) -> tuple[str, dict[str, StagedFile]]:
    """The validation set's files to send, and its path relative to the sent folder.

    Raises:
        EdgekitError: the set is not readable here, or too big to send to a board.
    """
    from edgekit.bundle import sha256_file
    from edgekit.data.dataset import load_dataset

    path = Path(val)
    dataset = load_dataset(path)  # fail here, once, not on every device
    folder = path if path.is_dir() else path.parent
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    if size > MAX_VAL_BYTES:
        raise EdgekitError(
            f"--val {val}: {size / 2**20:.0f} MB in {folder}; a board set should be small "
            f"(at most {MAX_VAL_BYTES >> 20} MB; it is copied to every device).",
            hint=f"Give a folder of a few dozen images (it has {len(dataset)}).")
    staged = {f"val/{p.relative_to(folder).as_posix()}":
              StagedFile(p, sha256_file(p), p.stat().st_size) for p in files}
    relative = "val" if path.is_dir() else f"val/{path.name}"
    return relative, staged


async def bench_device(bundle: Bundle, host: Host, settings: RemoteSettings, *,
                       flops: dict[str, Any] | None = None,
                       val: tuple[str, dict[str, StagedFile]] | None = None) -> DeviceBench:
    """Benchmarks the bundle on one device; never raises for a device-side failure."""
    start = time.perf_counter()
    out = DeviceBench(device=host.name, target=host.target.uri, emulated=host.emulated)
    try:
        async with host.target.transport() as transport:
            await _bench(transport, bundle, host, settings, flops or {}, val, out)
    except FlashError as exc:
        out.status, out.reason, out.hint = exc.status, exc.message, exc.hint
    except EdgekitError as exc:
        out.status, out.reason, out.hint = "failed", exc.message, exc.hint
    except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop a fleet
        out.status, out.reason = "failed", f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - start
    _say(settings, host.name, f"{out.status}" + (f": {out.reason}" if out.reason else ""))
    return out


async def _bench(transport: Transport, bundle: Bundle, host: Host, settings: RemoteSettings,
                 flops: dict[str, Any], val: tuple[str, dict[str, StagedFile]] | None,
                 out: DeviceBench) -> None:
    say = lambda message: _say(settings, host.name, message)  # noqa: E731
    root = transport.target.root
    say("connected; reading the device's facts")
    agent = await install_agent(transport)
    _, facts = await agent_call(transport, agent, *facts_args(root))
    profile, source, chosen, artifacts, skipped = select_artifacts(
        bundle, facts, board=host.board or settings.board, matrix=settings.matrix)
    out.board, out.board_source, out.chosen = profile.name, source, chosen.key
    packages = facts.get("packages") or {}
    out.runtimes = {r.package: packages[r.package] for r in runtimes() if packages.get(r.package)}
    out.artifacts, out.skipped = [a.key for a in artifacts], skipped
    for key, why in skipped.items():
        say(f"skipped {key}: {why}")
    files: dict[str, StagedFile] = {}
    for artifact in artifacts:
        files.update(_files(bundle, artifact))
    if val:
        files.update(val[1])
    plan = Plan(board=profile, board_source=source, artifact=artifacts[0],
                version=version_id(bundle), files=files, facts=facts)
    if facts.get("free_bytes", 0) < plan.size + (1 << 20):
        raise FlashError(f"{host.name}: not enough free disk for the scratch copy: "
                         f"{facts['free_bytes']:,} bytes free at {facts['root']}, "
                         f"{plan.size:,} needed.", status="refused",
                         hint="Free space on the device, or benchmark fewer artifacts.")
    scratch = f"{root}/{SCRATCH}/{plan.version}"
    sent = FlashResult(target=host.name, status="failed", previous=facts.get("current"))
    say(f"sending {len(files)} files ({plan.size / 1024:.0f} KiB) to {scratch}")
    await transport.makedirs(scratch)
    await _upload(transport, agent, plan, FlashSettings(), sent, stage=scratch)
    out.sent_bytes = sent.sent_bytes
    plan_file = await _send_plan(transport, scratch, plan, artifacts, settings, profile.name,
                                 val[0] if val else None)
    try:
        await _run_onboard(transport, scratch, plan_file, host, settings, flops, facts, out)
    finally:
        await _remove(transport, scratch)


async def _send_plan(transport: Transport, scratch: str, plan: Plan, artifacts: list[Artifact],
                     settings: RemoteSettings, board: str, val: str | None) -> str:
    from .onboard import PROTOCOL

    data = {"protocol": PROTOCOL, "board": board, "threads": settings.threads,
            "artifacts": [a.key for a in artifacts], "golden": settings.golden, "val": val,
            "files": {name: {"sha256": f.sha256, "size": f.size}
                      for name, f in plan.files.items()},
            "settings": {"runs": settings.runs, "duration_s": settings.duration_s,
                         "warmup": settings.warmup},
            "peak_seconds": settings.peak_seconds,
            "thermal_interval_s": settings.thermal_interval_s}
    remote = f"{scratch}/bench-plan.json"
    await put_json(transport, remote, data)
    return remote


async def _run_onboard(transport: Transport, scratch: str, plan_file: str, host: Host,
                       settings: RemoteSettings, flops: dict[str, Any],
                       facts: dict[str, Any], out: DeviceBench) -> None:
    done = False

    def on_line(line: str) -> None:
        nonlocal done
        try:
            event = json.loads(line)
        except ValueError:
            return  # a runtime's own chatter on stdout
        kind = event.get("event")
        if kind == "progress":
            _say(settings, host.name, event.get("message", ""))
        elif kind == "result":
            result = _result(event["result"], host, facts, flops)
            out.results.append(result)
            _say(settings, host.name, f"{result.artifact}: p50 {result.latency_ms['p50']:.2f} "
                 f"ms on {result.executed_on}")
        elif kind == "error":
            out.errors[event.get("artifact") or "device"] = event.get("reason", "")
            _say(settings, host.name, f"error: {event.get('reason')}")
        elif kind == "peak":
            for result in out.results:
                if result.threads == event.get("threads"):
                    set_compute(result, flops, event["peak"])
        elif kind == "done":
            done = True

    python = transport.target.python
    code, err = await transport.stream(
        [python, "-m", "edgekit.devices.remote.onboard", "--dir", scratch, "--plan", plan_file],
        on_line=on_line, timeout=settings.timeout_s)
    measured = f"{len(out.results)} of {len(out.artifacts)} artifacts measured"
    if not done:
        tail = (err.strip().splitlines() or [f"exit status {code}"])[-1]
        if "No module named" in tail:
            raise FlashError(f"{host.name}: the device's edgekit has no on-board bench "
                             f"({tail}).", status="refused",
                             hint="Install the host's edgekit version on the device.")
        # None: no exit status came back (the process or the connection was killed); a shell
        # between reports a child killed by signal N as 128 + N.
        stopped = "was killed" if code is None else (
            f"was killed (signal {code - 128})" if code > 128 else f"exited ({code})")
        raise FlashError(f"{host.name}: the bench on the device {stopped} before it finished "
                         f"({measured}): {tail}", status="failed",
                         hint="Check the device (memory, power, a crashed runtime) and run "
                              "again; results already measured are kept.")
    if out.errors:
        out.status = "partial" if out.results else "failed"
        out.reason = f"{measured}: " + "; ".join(f"{k}: {v}" for k, v in out.errors.items())
    else:
        out.status = "ok"


async def _remove(transport: Transport, scratch: str) -> None:
    """Removes the scratch copy; a dead connection leaves it for the next bench to reuse."""
    code = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"
    try:
        await asyncio.wait_for(transport.run([transport.target.python, "-c", code, scratch],
                                             timeout=30), 35)
    except Exception:  # noqa: BLE001 - best effort: never hides the bench's own outcome
        pass


_RESULT_FIELDS = {f.name for f in fields(BenchResult)}


def _result(data: dict[str, Any], host: Host, facts: dict[str, Any],
            flops: dict[str, Any]) -> BenchResult:
    """A device's result as a host BenchResult: the device in its fingerprint, FLOPs and
    utilisation against the device's peak."""
    result = BenchResult(**{k: v for k, v in data.items() if k in _RESULT_FIELDS})
    # Emulated: detected by the device's own fingerprint (qemu-user), or declared in the
    # inventory (`emulated: true`) where detection cannot see it.
    emulated = result.fingerprint.get("emulated") or ("declared" if host.emulated else None)
    result.fingerprint.update(
        device=host.name, target=host.target.uri, remote=True, emulated=emulated,
        device_tree_model=facts.get("device_tree_model") or None, os=facts.get("os"))
    set_compute(result, flops, data.get("peak") or {})
    result.thermal = data.get("thermal")
    result.golden = data.get("golden")
    return result


def measured_choice(device: DeviceBench, bundle: Bundle) -> str | None:
    """The artifact edgekit would choose on this board from what this run measured there.

    edgekit's default choice (edgekit.choice): the fastest artifact that passed its gate on a
    runtime the device has, by this board's measurements (here: this run's results alone),
    else the export gate's latency on a plain CPU board, else the profile's order. An
    emulated device's latencies are filed under ``<board>@emulated`` and never count, so its
    choice falls back as a real board's would with nothing measured.
    """
    import tempfile

    from edgekit.bench.history import History
    from edgekit.choice import choose

    from ..detect import Facts
    from ..profiles import load_profile
    from ..runners.base import Request, backend_for_format, candidates

    if not device.board:
        return None
    profile = load_profile(device.board)
    facts = Facts(arch=profile.arch, cores=profile.cores or 1, runtimes=device.runtimes)
    try:
        found = candidates(bundle, profile, Request())
    except EdgekitError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        history = History(Path(tmp) / "run.sqlite")
        for result in device.results:
            history.append(result)
        choice = choose([(a, backend_for_format(a.format, facts)) for a in found],
                        board=profile.name, history=history.path,
                        gate_latency=profile.family == "cpu")
    return choice.chosen.artifact.key if choice else None


def set_compute(result: BenchResult, flops: dict[str, Any], peak: dict[str, Any]) -> None:
    """FLOPs, achieved GFLOP/s at p50, the peak and the fraction of it the model uses.

    Over 100% says the peak is not this model's ceiling: the probe was disturbed (a busy
    machine) or the artifact's int8/fp16 kernels outrun fp32 SGEMM; ``note`` says so.
    """
    use = utilisation(flops.get("flops"), result.latency_ms["p50"], peak.get("gflops"))
    result.compute = {"flops": flops.get("flops"), "flops_method": flops.get("method"),
                      "flops_source": flops.get("source") or flops.get("reason"),
                      "gflops": use["gflops"], "peak_gflops": peak.get("gflops"),
                      "peak": peak, "utilisation": use["fraction"]}
    if use["fraction"] and use["fraction"] > 1:
        result.compute["note"] = ("over the fp32 matmul peak: the probe was disturbed (a "
                                  "busy machine) or this artifact's kernels beat fp32 SGEMM")


async def bench_fleet(bundle: str | Path | Bundle, hosts: list[Host], *,
                      settings: RemoteSettings, parallel: int = 4) -> list[DeviceBench]:
    """Benchmarks every host, at most ``parallel`` at once; results in inventory order."""
    from edgekit.detector import open_bundle

    loaded = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    flops = bundle_flops(loaded)
    val = _val_files(settings.val) if settings.val else None
    gate = asyncio.Semaphore(max(parallel, 1))

    async def one(host: Host) -> DeviceBench:
        async with gate:
            done = await bench_device(loaded, host, settings, flops=flops, val=val)
        chosen = measured_choice(done, loaded)
        for result in done.results:
            result.fingerprint["would_run"] = chosen
        return done

    return list(await asyncio.gather(*(one(h) for h in hosts)))


def host_for(target: Target, *, name: str | None = None, board: str | None = None,
             emulated: bool = False) -> Host:
    """One ``--on`` target as a one-host fleet."""
    return Host(name=name or target.name, target=target, board=board, emulated=emulated)
