"""One device: preflight, upload (resumable), activate with health check, rollback, status.

The host decides and sends; the device's agent (agent.py, run by the device's Python) verifies
and switches. Whatever fails, the version that was active before stays active: nothing is
switched before the staged files are verified on the device, and a failed health check
switches back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle

from .preflight import Plan, make_plan
from .targets import FlashError, Target, Transport
from .verdict import await_verdict

AGENT = Path(__file__).with_name("agent.py")
STATUSES = ("ok", "rolled-back", "refused", "unreachable", "failed")


@dataclass(frozen=True, kw_only=True)
class FlashSettings:
    """How to flash.

    Attributes:
        board: Board profile name; None detects it from the device.
        keep: Versions kept on the device (the active one always is).
        health: Run the health check after activation (off only for offline targets).
        golden: Replay the bundle's golden inputs in the health check.
        max_latency_ms: The health check's limit on a full detector call (median).
        runs: Timed detector calls in the health check.
        check_space: Refuse in preflight when the device lacks the space.
        verdict_timeout_s: Where an ``edgekit serve`` runs on the device, how long to wait for
            its verdict on live frames (probation); 0 does not wait.
        progress: Called with the bytes sent after each chunk.
    """

    board: str | None = None
    keep: int = 3
    health: bool = True
    golden: bool = True
    max_latency_ms: float = 2000.0
    runs: int = 10
    check_space: bool = True
    verdict_timeout_s: float = 120.0
    progress: Callable[[int], None] | None = None


@dataclass(kw_only=True)
class FlashResult:
    """What happened on one device; ``active`` is what the device runs afterwards."""

    target: str
    status: str
    reason: str | None = None
    active: str | None = None
    previous: str | None = None
    version: str | None = None
    board: str | None = None
    artifact: str | None = None
    sent_bytes: int = 0
    resumed_bytes: int = 0
    seconds: float = 0.0
    health: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def agent_call(transport: Transport, agent: str, *args: str,
                     timeout: float = 600) -> tuple[int, dict[str, Any]]:
    """Runs one agent command on the device and parses its JSON answer."""
    python = transport.target.python
    code, out, err = await transport.run([python, agent, *args], timeout=timeout)
    lines = out.strip().splitlines()
    try:
        return code, json.loads(lines[-1])
    except (IndexError, ValueError):
        detail = (err.strip() or out.strip() or f"exit status {code}").splitlines()[-1]
        raise FlashError(
            f"{transport.target.name}: the device's Python '{python}' could not run the flash "
            f"agent: {detail}", status="refused",
            hint="Pass the interpreter that has edgekit with --remote-python (or `python:` in "
                 "the inventory).") from None


def facts_args(root: str) -> list[str]:
    """The agent's ``facts`` command for ``root``, asking after every runtime package the
    backends declare (the agent runs on the device's bare Python and cannot read them)."""
    from edgekit.backends import runtimes

    packages = dict.fromkeys(r.package for r in runtimes())
    return ["facts", "--root", root, *(a for p in packages for a in ("--package", p))]


async def install_agent(transport: Transport) -> str:
    """Uploads agent.py (named by its hash, so a changed agent is a new file)."""
    digest = hashlib.sha256(AGENT.read_bytes()).hexdigest()[:12]
    root = transport.target.root
    remote = f"{root}/.edgekit-agent/agent-{digest}.py"
    if await transport.size(remote) != AGENT.stat().st_size:
        await transport.makedirs(f"{root}/.edgekit-agent")
        await transport.put(AGENT, remote)
    return remote


async def flash_async(bundle: str | Path | Bundle, target: Target, *,
                      settings: FlashSettings | None = None) -> FlashResult:
    """Flashes one bundle onto one device; never raises for a device-side failure.

    Returns:
        A FlashResult whose status is ok, rolled-back, refused, unreachable or failed.
    """
    settings = settings or FlashSettings()
    start = time.perf_counter()
    result = FlashResult(target=target.name, status="failed")
    try:
        loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        async with target.transport() as transport:
            await _flash(transport, loaded, settings, result)
    except FlashError as exc:
        result.status, result.reason = exc.status, str(exc)
        result.details.update(exc.details)
    except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop a fleet
        result.status, result.reason = "failed", getattr(exc, "message", None) or repr(exc)
    result.seconds = time.perf_counter() - start
    return result


async def _flash(transport: Transport, bundle: Bundle, settings: FlashSettings,
                 result: FlashResult) -> None:
    root = transport.target.root
    agent = await install_agent(transport)
    _, facts = await agent_call(transport, agent, *facts_args(root),
                                *(("--no-detect",) if settings.board else ()))
    result.previous = result.active = facts.get("current")
    plan = make_plan(bundle, facts, board=settings.board, golden=settings.golden,
                     health=settings.health, check_space=settings.check_space)
    result.version, result.board, result.artifact = plan.version, plan.board.name, \
        plan.artifact.key
    plan_file = await _send_plan(transport, plan, settings)
    for attempt in (1, 2):
        if plan.version not in facts.get("installed", []):
            await _upload(transport, agent, plan, settings, result)
        code, answer = await agent_call(transport, agent, "activate", "--root", root,
                                        "--plan", plan_file)
        result.active = answer.get("active")
        result.health = answer.get("health")
        if code == 0:
            result.status = "ok"
            await await_verdict(transport, agent, facts, plan.version, settings, result)
            return
        if answer.get("stage") == "verify" and attempt == 1:
            continue  # the agent deleted the corrupt files: send them once more
        break
    still = f"'{result.active}' is still active" if result.active else "nothing is active"
    status = {"health": "rolled-back", "signature": "refused"}.get(answer.get("stage"), "failed")
    reason = str(answer.get('reason')).rstrip('.')
    raise FlashError(f"{transport.target.name}: {reason}; {still}.",
                     status=status, details={"stage": answer.get("stage")})


async def _send_plan(transport: Transport, plan: Plan, settings: FlashSettings) -> str:
    data = {"version": plan.version, "keep": settings.keep,
            "artifact": {"file": plan.artifact.file, "key": plan.artifact.key},
            "files": {name: {"sha256": f.sha256, "size": f.size}
                      for name, f in plan.files.items()},
            "health": {"golden": settings.golden and settings.health,
                       "max_latency_ms": settings.max_latency_ms, "runs": settings.runs,
                       "skip": not settings.health}}
    remote = f"{transport.target.root}/staging/{plan.version}.plan.json"
    await transport.makedirs(f"{transport.target.root}/staging/{plan.version}")
    await put_json(transport, remote, data)
    return remote


async def put_json(transport: Transport, remote: str, data: dict[str, Any]) -> None:
    """Writes ``data`` as a JSON file on the device."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "data.json"
        local.write_text(json.dumps(data))
        await transport.put(local, remote)


async def _upload(transport: Transport, agent: str, plan: Plan, settings: FlashSettings,
                  result: FlashResult, *, stage: str | None = None) -> None:
    """Sends the files the device lacks; a partial file is continued from where it stopped.

    ``stage`` is the directory on the device (default: the flash staging directory; `bench
    --on` sends into its own scratch directory).
    """
    stage = stage or f"{transport.target.root}/staging/{plan.version}"

    def sent(count: int) -> None:
        result.sent_bytes += count
        if settings.progress:
            settings.progress(count)

    for name, staged in plan.files.items():
        remote = f"{stage}/{name}"
        try:
            if "/" in name:
                await transport.makedirs(remote.rsplit("/", 1)[0])
            have = await transport.size(remote) or 0
            if have == staged.size:
                result.resumed_bytes += have  # verified by sha256 on the device before use
                continue
            offset = have if have < staged.size else 0
            result.resumed_bytes += offset
            await transport.put(staged.local, remote, offset=offset, progress=sent)
        except FlashError:
            raise
        except Exception as exc:  # noqa: BLE001 - SFTP, OSError, a dropped connection
            await _upload_failed(transport, agent, plan, name, exc, result)


async def _upload_failed(transport: Transport, agent: str, plan: Plan, name: str,
                         exc: BaseException, result: FlashResult) -> None:
    """Says why an upload broke off: a full disk (staging removed) or a lost connection."""
    still = f"'{result.previous}' is still active" if result.previous else "nothing was active"
    try:
        _, facts = await asyncio.wait_for(
            agent_call(transport, agent, *facts_args(transport.target.root)), 30)
    except Exception:  # noqa: BLE001 - the connection is gone: that is the diagnosis
        raise FlashError(
            f"{transport.target.name}: the connection dropped while sending '{name}' "
            f"({result.sent_bytes:,} bytes sent): {exc or type(exc).__name__}. Nothing was "
            f"activated; {still}.", status="failed",
            hint="Run the same command again: the upload resumes where it stopped.") from None
    if facts.get("free_bytes", 0) < plan.size:
        await agent_call(transport, agent, "discard", "--root", transport.target.root,
                         "--version", plan.version)
        raise FlashError(
            f"{transport.target.name}: the device's disk is full ({facts['free_bytes']:,} "
            f"bytes free at {facts['root']}) while sending '{name}'; the partial upload was "
            f"removed and nothing was activated; {still}.", status="failed",
            hint="Free space on the device (or lower --keep) and flash again.") from None
    raise FlashError(f"{transport.target.name}: sending '{name}' failed: {exc}. Nothing was "
                     f"activated; {still}.", status="failed") from None


async def rollback_async(target: Target, *, golden: bool = True) -> FlashResult:
    """Switches the device back to the previous healthy version it keeps."""
    return await _simple(target, "rollback", *(() if golden else ("--no-golden",)))


async def status_async(target: Target, *, check: bool = False,
                       golden: bool = True) -> FlashResult:
    """Reads what is active, kept and last checked (``check``: re-run the health check)."""
    args = (("--check",) if check else ()) + (() if golden else ("--no-golden",))
    return await _simple(target, "status", *args)


async def _simple(target: Target, command: str, *args: str) -> FlashResult:
    start = time.perf_counter()
    result = FlashResult(target=target.name, status="failed")
    try:
        async with target.transport() as transport:
            agent = await install_agent(transport)
            code, answer = await agent_call(transport, agent, command, "--root", target.root,
                                            *args)
        result.status = "ok" if code == 0 else "failed"
        result.reason = answer.get("reason") or (answer.get("check") or {}).get("reason")
        result.active = answer.get("active")
        result.previous = answer.get("replaced")
        result.health = answer.get("health") or answer.get("check") or answer.get("last_health")
        result.details = answer
    except FlashError as exc:
        result.status, result.reason = exc.status, str(exc)
    result.seconds = time.perf_counter() - start
    return result


def flash(bundle: str | Path | Bundle, target: Target, *,
          settings: FlashSettings | None = None) -> FlashResult:
    """Synchronous :func:`flash_async`."""
    return asyncio.run(flash_async(bundle, target, settings=settings))
