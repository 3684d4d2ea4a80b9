"""Fleet rollouts in waves: a canary, then growing waves, each only if the fleet stays healthy.

``edgekit rollout BUNDLE --inventory fleet.yaml --canary 1 --waves 10%,50%,100%``: waves are
cumulative shares of the fleet (10% of it updated after the first wave, half after the second,
all after the last). A device whose update fails (refused, failed, rolled back by its health
check or by its live service) counts against ``--halt-on``; reaching it stops the rollout: no
new device starts, those in flight finish, and with ``--rollback-wave`` the devices the halted
wave updated go back. A device that cannot be reached is retried, then again in every later
wave and on ``--resume``; it never counts as healthy. The state lives in SQLite
(rollout_state.py), so ``--resume`` continues after the host itself died.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError

from .deploy import FlashResult, FlashSettings, flash_async, rollback_async, status_async
from .fleet import Host, load_inventory
from .preflight import version_id
from .rollout_state import FAILURES, DeviceRow, RolloutStore


@dataclass(frozen=True, kw_only=True)
class RolloutSettings:
    """How a rollout proceeds.

    Attributes:
        canary: Devices updated first, alone.
        waves: Cumulative shares of the fleet after each wave (the last is 1.0).
        halt_on: 1 or more: halt at this many failed devices; below 1: halt when this share
            of the devices tried so far failed.
        parallel: Devices flashed at once.
        retries: Extra tries, within a wave, for a device that was unreachable.
        retry_delay_s: Wait before the first retry (doubles for each further one).
        rollback_wave: On a halt, switch the devices the halted wave updated back.
        flash: Settings of each device's flash.
    """

    canary: int = 1
    waves: tuple[float, ...] = (0.1, 0.5, 1.0)
    halt_on: float = 1
    parallel: int = 4
    retries: int = 2
    retry_delay_s: float = 2.0
    rollback_wave: bool = False
    flash: FlashSettings = field(default_factory=FlashSettings)


def parse_waves(text: str) -> tuple[float, ...]:
    """``"10%,50%,100%"`` -> (0.1, 0.5, 1.0); rising, ending at 100%."""
    try:
        waves = tuple(float(p.strip().rstrip("%")) / 100 for p in text.split(",") if p.strip())
    except ValueError:
        waves = ()
    if not waves or any(b <= a for a, b in zip(waves, waves[1:], strict=False)) \
            or waves[-1] != 1.0 or waves[0] <= 0:
        raise EdgekitError(f"--waves '{text}' is not a rising list of percentages ending at "
                           "100%.", hint="e.g. --waves 10%,50%,100%")
    return waves


def parse_halt(text: str) -> float:
    """``"1"`` (failed devices) or ``"5%"`` (share of the devices tried)."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = -1
    if text.endswith("%") and 0 < value <= 100:
        return value / 100
    if not text.endswith("%") and value >= 1 and value == int(value):
        return value
    raise EdgekitError(f"--halt-on '{text}' is neither a count (1, 2, ...) nor a share (5%).",
                       hint="e.g. --halt-on 1 or --halt-on 5%")


def plan_waves(names: list[str], canary: int, waves: tuple[float, ...]) -> list[list[str]]:
    """Splits the fleet, in inventory order: wave 0 is the canary, then each share's rest."""
    canary = min(max(canary, 0), len(names))
    out = [names[:canary]] if canary else []
    done = canary
    for share in waves:
        upto = max(done, min(len(names), math.ceil(share * len(names))))
        out.append(names[done:upto])
        done = upto
    return out


class Rollout:
    """Runs (or resumes) one rollout recorded in ``store``."""

    def __init__(self, store: RolloutStore, bundle: Bundle, hosts: list[Host],
                 settings: RolloutSettings, *,
                 on_device: Callable[[DeviceRow], None] | None = None) -> None:
        self.store, self.bundle, self.settings = store, bundle, settings
        self.hosts = {h.name: h for h in hosts}
        self.version = version_id(bundle)
        self.on_device = on_device
        self.halted: str | None = store.get("halted")

    @classmethod
    def start(cls, store: RolloutStore, bundle_path: str | Path, inventory: str | Path,
              settings: RolloutSettings, overrides: dict[str, Any], **kwargs: Any) -> Rollout:
        """Plans a new rollout into an empty state file."""
        if store.started:
            raise EdgekitError(f"{store.path} already holds a rollout of "
                               f"'{store.get('version')}' ({store.get('status')}).",
                               hint="Continue it with --resume, or pass another --state file.")
        bundle = Bundle.load(bundle_path)
        hosts = load_inventory(inventory, **overrides)
        waves = plan_waves([h.name for h in hosts], settings.canary, settings.waves)
        store.add_devices(waves)
        store.put(version=version_id(bundle), bundle=str(Path(bundle_path).absolute()),
                  inventory=str(Path(inventory).absolute()), overrides=overrides,
                  settings=_settings_dict(settings), status="running", halted=None,
                  created=time.time(), waves=len(waves))
        return cls(store, bundle, hosts, settings, **kwargs)

    @classmethod
    def resume(cls, store: RolloutStore, *, parallel: int | None = None,
               **kwargs: Any) -> Rollout:
        """Reopens a rollout from its state file (the bundle must be unchanged)."""
        if not store.started:
            raise EdgekitError(f"{store.path} holds no rollout to resume.",
                               hint="Start one: edgekit rollout BUNDLE --inventory FILE.")
        bundle = Bundle.load(store.get("bundle"))
        if version_id(bundle) != store.get("version"):
            raise EdgekitError(f"{store.get('bundle')} changed since the rollout started "
                               f"(it was '{store.get('version')}').",
                               hint="Roll the new bundle out with a new --state file.")
        hosts = load_inventory(store.get("inventory"), **store.get("overrides", {}))
        settings = _settings_from(store.get("settings"))
        if parallel:
            settings = replace(settings, parallel=parallel)
        if store.get("halted"):  # the operator fixed what halted it: its failures are retried
            for row in store.devices():
                if row.status in FAILURES:
                    store.mark(row.name, status="pending")
            store.put(halted=None, halted_wave=None, status="running")
        return cls(store, bundle, hosts, settings, **kwargs)

    # ---- running ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Runs the remaining waves; returns the summary (also kept in the state file)."""
        start = time.perf_counter()
        waves = self.store.get("waves", 0)
        for wave in range(waves):
            if self.halted:
                break
            todo = [r for r in self.store.devices() if r.wave <= wave and
                    r.status in ("pending", "flashing", "unreachable")]
            gate = asyncio.Semaphore(max(self.settings.parallel, 1))
            await asyncio.gather(*(self._one(row, gate) for row in todo))
            if self.halted:
                self.store.put(halted_wave=wave)
                if self.settings.rollback_wave:
                    await self._roll_back_wave(wave, gate)
        rows = self.store.devices()
        status = "halted" if self.halted else \
            "complete" if all(r.status == "ok" for r in rows) else "incomplete"
        elapsed = self.store.get("seconds", 0.0) + time.perf_counter() - start
        self.store.put(status=status, seconds=elapsed)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        rows = self.store.devices()
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return {"version": self.version, "status": self.store.get("status"),
                "halted": self.store.get("halted"), "halted_wave": self.store.get("halted_wave"),
                "seconds": round(self.store.get("seconds", 0.0), 2), "counts": counts,
                "devices": [r.to_dict() for r in rows]}

    async def _one(self, row: DeviceRow, gate: asyncio.Semaphore) -> None:
        async with gate:
            if self.halted:
                return
            host = self.hosts.get(row.name)
            if host is None:
                self.store.mark(row.name, status="failed", finished=time.time(),
                                reason="no longer in the inventory")
                return
            if row.status == "flashing" and await self._recovered(host):
                return
            result = await self._flash(host)
            self._record(host, result)

    async def _flash(self, host: Host) -> FlashResult:
        own = replace(self.settings.flash, board=host.board or self.settings.flash.board)
        for attempt in range(self.settings.retries + 1):
            self.store.start_flash(host.name)  # committed first: a resume asks the device
            result = await flash_async(self.bundle, host.target, settings=own)
            if result.status != "unreachable" or attempt == self.settings.retries or \
                    self.halted:
                return result
            await asyncio.sleep(self.settings.retry_delay_s * 2 ** attempt)
        return result

    def _record(self, host: Host, result: FlashResult) -> None:
        service = (result.details or {}).get("service") or {}
        verdict = service.get("verdict") or (
            "golden ok" if (result.health or {}).get("ok") else
            "health failed" if result.status == "rolled-back" else None)
        self.store.mark(host.name, status=result.status, before=result.previous,
                        after=result.active, verdict=verdict, reason=result.reason,
                        finished=time.time(), seconds=round(result.seconds, 3),
                        result=result.to_dict())
        if result.status in FAILURES:
            self._check_halt(host.name, result.reason)
        self._report(host.name)

    def _check_halt(self, name: str, reason: str | None) -> None:
        failures, tried = self.store.failures(), self.store.attempted()
        limit = self.settings.halt_on
        if (limit >= 1 and failures >= limit) or (limit < 1 and failures / max(tried, 1) >= limit):
            self.halted = (f"{failures} of {tried} devices failed (limit "
                           f"{limit:g}{'' if limit >= 1 else ' of those tried'}); first "
                           f"stopping one: {name}: {(reason or '').splitlines()[0].rstrip('.')}")
            self.store.put(halted=self.halted, status="halted")

    async def _recovered(self, host: Host) -> bool:
        """A device the host died flashing: did that flash finish? (then it is not redone)

        The agent records an activation only after its health check passed; while a switched
        ``current`` has no record yet, an orphaned agent is still checking: wait for it.
        """
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = await status_async(host.target)
            if result.status != "ok":
                return False
            info = result.details
            mine = [h for h in info.get("history", []) if h.get("version") == self.version]
            if info.get("active") == self.version and mine and mine[-1]["action"] == "activate":
                before = next((h["version"] for h in reversed(info["history"])
                               if h.get("version") != self.version
                               and h.get("action") == "activate"), None)
                self.store.mark(host.name, status="ok", before=before, after=self.version,
                                verdict="recovered after the host stopped",
                                finished=time.time(), reason=None)
                self._report(host.name)
                return True
            if info.get("active") != self.version or mine:
                return False  # not switched, or rolled back: flash it (again) properly
            await asyncio.sleep(0.5)
        return False

    async def _roll_back_wave(self, wave: int, gate: asyncio.Semaphore) -> None:
        async def back(row: DeviceRow) -> None:
            async with gate:
                result = await rollback_async(self.hosts[row.name].target)
                self.store.mark(row.name, status="reverted" if result.ok else row.status,
                                after=result.active, reason=result.reason or
                                "rolled back: the rollout halted in its wave")
        await asyncio.gather(*(back(r) for r in self.store.devices(wave) if r.status == "ok"))

    def _report(self, name: str) -> None:
        if self.on_device:
            row = next(r for r in self.store.devices() if r.name == name)
            self.on_device(row)


def _settings_dict(settings: RolloutSettings) -> dict[str, Any]:
    data = asdict(replace(settings, flash=replace(settings.flash, progress=None)))
    data["flash"].pop("progress", None)
    return data


def _settings_from(data: dict[str, Any]) -> RolloutSettings:
    flash = FlashSettings(**data.pop("flash"))
    return RolloutSettings(**{**data, "waves": tuple(data["waves"]), "flash": flash})
