"""After a flash: wait for the device service's verdict on live frames, and report it.

The agent's health check proves the artifact loads and reproduces its golden outputs; only the
live pipeline (``edgekit serve``, devices/service) can tell that it still works on this camera.
Where a service runs on the device (its heartbeat is fresh in the facts), the host waits for its
probation verdict; where none runs, the flash ends with the agent's check, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .targets import FlashError, Transport

if TYPE_CHECKING:  # pragma: no cover
    from .deploy import FlashResult, FlashSettings


async def await_verdict(transport: Transport, agent: str, facts: dict[str, Any], version: str,
                        settings: FlashSettings, result: FlashResult) -> None:
    """Waits (bounded) for the service's verdict on ``version``; raises if it rolled back.

    Raises:
        FlashError: status ``rolled-back`` (the service went back by itself) or ``failed``
            (no verdict within the timeout: the new version runs, still on probation).
    """
    from .deploy import agent_call

    service = facts.get("service") or {}
    if settings.verdict_timeout_s <= 0 or not service.get("alive"):
        return  # nothing runs the model live there: the agent's health check was the verdict
    code, answer = await agent_call(
        transport, agent, "verdict", "--root", transport.target.root, "--version", version,
        "--since", str(facts.get("time", 0.0)), "--timeout", str(settings.verdict_timeout_s),
        timeout=settings.verdict_timeout_s + 60)
    result.details["service"] = answer
    if code == 0:
        return
    verdict = answer.get("verdict")
    name = transport.target.name
    if verdict == "timeout":
        raise FlashError(f"{name}: {answer.get('reason')}; '{version}' is active and still on "
                         "probation.", status="failed",
                         hint="Look at `edgekit status TARGET` later, or raise "
                              "--verdict-timeout.", details={"stage": "verdict"})
    result.active = answer.get("active") or answer.get("previous")
    still = f"'{result.active}' is active again" if result.active else "nothing is active"
    what = {"rolled-back": "rolled back", "load-failed": "could not load",
            "superseded": "replaced"}.get(str(verdict), str(verdict))
    raise FlashError(f"{name}: the device service {what} '{version}' on live frames: "
                     f"{answer.get('reason')}; {still}.", status="rolled-back",
                     details={"stage": "live", "verdict": answer})
