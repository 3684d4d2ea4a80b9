"""`edgekit serve`: the live pipeline on the device, following the flashed ``current`` link.

One control loop (every ``poll_s``) watches the link, loads a new version beside the running
one in a loader thread, swaps it in between two frames, runs its probation, rolls back on a
failed verdict, writes the heartbeat the flash agent reads (service.json) and pings systemd's
watchdog while frames flow. The cameras and sinks stay open the whole time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.pipeline import ModelSettings, Pipeline, PipelineSettings

from .config import ServiceConfig
from .hot import HotModel, Slot, load_slot
from .notify import Notifier
from .probation import Probation, Verdict
from .root import InstallRoot
from .status import StatusServer

log = logging.getLogger("edgekit.service")
HEARTBEAT_S = 1.0


@dataclass
class _Load:
    """A version being loaded in the loader thread."""

    version: str
    since: float
    dropped_before: int
    thread: threading.Thread
    slot: Slot | None = None
    error: str | None = None


class Service:
    """The device service: one pipeline, one active model, hot swaps with probation.

    Args:
        root: The install root the flash agent writes (``current`` link, versions/).
        config: Cameras, sinks, analytics, model and probation settings.
        poll_s: How often the link is looked at.
        notifier: systemd notify (default: from the environment).
    """

    def __init__(self, root: str | Path, config: ServiceConfig, *, poll_s: float = 0.25,
                 notifier: Notifier | None = None) -> None:
        self.root = InstallRoot(root)
        self.config = config
        self.poll_s = poll_s
        self.notifier = notifier or Notifier()
        self.pipeline: Pipeline | None = None
        self.hot: HotModel | None = None
        self.trusted: Slot | None = None  # the last version that passed (or the first one)
        self.probation: Probation | None = None
        self.rollbacks = 0
        self._entry: dict[str, Any] | None = None  # the verdict being decided
        self._load: _Load | None = None
        self._pending_swap: tuple[Slot, dict[str, Any], int] | None = None
        self._stop = threading.Event()
        self._last_beat = 0.0
        self._last_out = -1
        self.status = StatusServer(config.status.listen, config.status.token, self.summary) \
            if config.status.listen else None

    # ---- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Asks the control loop to finish (a signal handler may call it)."""
        self._stop.set()

    def run(self, duration: float | None = None) -> dict[str, Any]:
        """Runs until stopped, ``duration`` passes, or every (offline) source ended."""
        end = None if duration is None else time.monotonic() + duration
        if self.status:
            self.status.start()
            log.info("status endpoint: %s", self.status.url)
        try:
            version = self._wait_for_model(end)
            if version is None:
                return self.summary()
            self._start(version)
            while not self._stop.is_set() and (end is None or time.monotonic() < end):
                if self.pipeline.wait(0):
                    log.info("every source ended")
                    break
                self._tick()
                self._stop.wait(self.poll_s)
        finally:
            self._shutdown()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The pipeline's summary plus the service's own state (status endpoint, /metrics)."""
        out = self.pipeline.summary() if self.pipeline else {"cameras": {}}
        active = self.hot.active if self.hot else None
        probation = self.probation
        out["service"] = {
            "status": self.root.record["status"], "root": str(self.root.path),
            "version": active.version if active else None,
            "executed_on": active.executed_on if active else None,
            "trusted": self.trusted.version if self.trusted else None,
            "healthy": bool(active) and probation is None and self._streaming(),
            "on_probation": probation is not None,
            "probation": probation.figures() if probation else None,
            "swaps": self.hot.swaps if self.hot else 0, "rollbacks": self.rollbacks,
            "inference_ms": active.latency.summary() if active else {},
            "verdicts": self.root.record["verdicts"][-5:],
            "uptime_s": round(time.time() - self.root.record["started"], 1)}
        return out

    # ---- start and stop --------------------------------------------------------------------

    def _wait_for_model(self, end: float | None) -> str | None:
        """Waits until a version is active (a service may be installed before the flash)."""
        self.root.beat(status="waiting for a model")
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            version = self.root.active()
            if version and not self.root.busy():
                return version
            self._beat_and_ping()
            self._stop.wait(self.poll_s)
        return None

    def _start(self, version: str) -> None:
        model = self.config.model
        slot = load_slot(self.root.directory(version), version, board=model.board,
                         threads=model.threads, warmup=model.warmup,
                         settings=ModelSettings(conf=model.conf, iou=model.iou))
        self.hot = HotModel(slot)
        self.hot.swaps = 0
        self.trusted = slot
        self.hot.observer = self._observe
        self.pipeline = Pipeline(self.hot, list(self.config.sources), list(self.config.sinks),
                                 analytics=self.config.analytics,
                                 settings=PipelineSettings(), names=self.config.names or None)
        self.pipeline.start()
        for sink in self.pipeline.sinks:
            sink.stats_provider = self.summary  # an http:// sink's /metrics shows the service
        self.root.beat(status="running", version=version,
                       status_url=self.status.url if self.status else None)
        self.notifier.send("READY=1", f"STATUS=running {version} on {slot.executed_on}")
        log.info("running %s on %s (loaded in %.2f s)", version, slot.executed_on, slot.load_s)

    def _shutdown(self) -> None:
        self.notifier.send("STOPPING=1")
        if self.probation:
            self.probation.close()
        if self.pipeline:
            self.pipeline.stop()
        if self._load:
            self._load.thread.join(30)
        if self.status:
            self.status.stop()
        self.root.beat(status="stopped")

    # ---- the control loop ------------------------------------------------------------------

    def _tick(self) -> None:
        if self._load and not self._load.thread.is_alive():
            self._loaded(self._load)
            self._load = None
        if self._load is None:
            self._follow_link()
        if self.probation:
            verdict = self.probation.check()
            if verdict:
                self._decide(verdict)
        self._measure_swap()
        self._beat_and_ping()

    def _follow_link(self) -> None:
        active = self.root.active()
        running = self.hot.active.version
        if not active or active == running or self.root.busy():
            return  # nothing new, or a flash is still checking it: wait for the agent
        if self.trusted and active == self.trusted.version:
            self._supersede(f"'{active}' was activated again on the device")
            self._swap(self.trusted, None)  # the trusted model is still loaded: no reload
            return
        since = time.time()
        load = _Load(active, since, self._dropped(), threading.Thread(target=lambda: None))
        load.thread = threading.Thread(target=self._load_version, args=(load,),
                                       name=f"load {active}", daemon=True)
        self.root.verdict(version=active, previous=running, since=since, verdict="loading",
                          reason=None)
        self.root.beat(status=f"loading {active}")
        log.info("the current link moved to %s: loading it beside %s", active, running)
        load.thread.start()
        self._load = load

    def _load_version(self, load: _Load) -> None:
        model = self.config.model
        try:
            load.slot = load_slot(self.root.directory(load.version), load.version,
                                  board=model.board, threads=model.threads, warmup=model.warmup,
                                  settings=ModelSettings(conf=model.conf, iou=model.iou),
                                  image=self.hot.last_image)
        except EdgekitError as exc:
            load.error = exc.message
        except Exception as exc:  # noqa: BLE001 - any runtime failure: the old model stays
            load.error = f"{type(exc).__name__}: {exc}"

    def _loaded(self, load: _Load) -> None:
        running = self.hot.active
        if load.slot is None or self.root.active() != load.version:
            reason = load.error or "the link moved on while it loaded"
            self._refuse(load, running, reason)
            return
        previous = self.trusted
        self._supersede(f"replaced by '{load.version}'")
        self._entry = self.root.verdict(
            version=load.version, previous=previous.version, since=load.since,
            verdict="probation", reason=None,
            swap={"load_s": round(load.slot.load_s, 3), "warm_s": round(load.slot.warm_s, 3),
                  "executed_on": load.slot.executed_on})
        try:
            self._swap(load.slot, load)
        except ValueError as exc:
            self._entry = None
            self._refuse(load, running, str(exc))
            return
        self.probation = Probation(load.slot, previous, self.config.probation)
        self.root.beat(status="running", version=load.version)

    def _refuse(self, load: _Load, running: Slot, reason: str) -> None:
        """A version that did not load: the running model stays, the link goes back to it."""
        log.error("'%s' did not load: %s; '%s' keeps running", load.version, reason,
                  running.version)
        restored = self.root.roll_back(load.version, running.version, f"load failed: {reason}",
                                       {}) if self.root.active() == load.version else False
        self.root.verdict(version=load.version, previous=running.version, since=load.since,
                          verdict="load-failed", reason=reason, active=self.root.active(),
                          decided=time.time(), link_restored=restored)

    def _swap(self, slot: Slot, load: _Load | None) -> None:
        self.hot.swap(slot)
        self._pending_swap = (slot, self._entry or {}, load.dropped_before if load else
                              self._dropped())
        log.info("swapped to %s", slot.version)

    def _supersede(self, reason: str) -> None:
        if self.probation is None:
            return
        self.probation.close()
        candidate = self.probation.candidate
        self.probation = None
        if self._entry:
            self.root.verdict(**{**self._entry, "verdict": "superseded", "reason": reason,
                                 "decided": time.time()})
            self._entry = None
        log.info("probation of %s ended: %s", candidate.version, reason)

    def _decide(self, verdict: Verdict) -> None:
        probation, entry = self.probation, self._entry or {}
        self.probation, self._entry = None, None
        probation.close()
        candidate, previous = probation.candidate, probation.previous
        figures = {**verdict.figures,
                   "decided_after_s": round(time.perf_counter() - candidate.activated, 3)}
        if verdict.healthy:
            self.trusted = candidate
            self.root.verdict(**{**entry, "verdict": "healthy", "reason": verdict.reason,
                                 "figures": figures, "decided": time.time(),
                                 "active": candidate.version})
            log.info("%s is healthy: %s", candidate.version, verdict.reason)
            return
        t0 = time.perf_counter()
        self.hot.swap(previous)  # still loaded and warm: the rollback is one assignment
        self._pending_swap = (previous, {}, self._dropped())
        self.rollbacks += 1
        restored = self.root.roll_back(candidate.version, previous.version, verdict.reason,
                                       figures)
        figures["rollback_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        self.root.verdict(**{**entry, "verdict": "rolled-back", "reason": verdict.reason,
                             "figures": figures, "decided": time.time(),
                             "active": previous.version, "link_restored": restored})
        log.warning("%s failed its probation (%s): back on %s", candidate.version,
                    verdict.reason, previous.version)

    def _measure_swap(self) -> None:
        """Once the first frame ran on a swapped-in model: swap time and frames dropped."""
        if not self._pending_swap:
            return
        slot, entry, dropped_before = self._pending_swap
        if slot.first_frame is None:
            return
        self._pending_swap = None
        figures = {"first_frame_ms": round((slot.first_frame - slot.activated) * 1e3, 2),
                   "dropped": self._dropped() - dropped_before}
        if entry and entry is self._entry:
            entry["swap"] = {**entry.get("swap", {}), **figures}
            self.root.verdict(**entry)
        log.info("first frame on %s %.1f ms after the swap; %d frames dropped meanwhile",
                 slot.version, figures["first_frame_ms"], figures["dropped"])
        self.root.record.setdefault("swaps", []).append({"version": slot.version, **figures})
        del self.root.record["swaps"][:-20]

    def _observe(self, slot: Slot, image: Any, detections: Any) -> None:
        probation = self.probation
        if probation is not None:
            probation.observe(slot, image, detections)

    # ---- heartbeat, watchdog ---------------------------------------------------------------

    def _dropped(self) -> int:
        if not self.pipeline:
            return 0
        s = self.pipeline.summary()
        return int(s["dropped"]) + sum(s["sink_dropped"].values())

    def _streaming(self) -> bool:
        if not self.pipeline:
            return False
        return all(cam.source.stats.status == "streaming" for cam in self.pipeline.cameras)

    def _progress(self) -> bool:
        """Whether the pipeline is alive: frames go out, or no camera gives any to process."""
        if not self.pipeline:
            return True
        out = sum(self.pipeline.metrics.camera(c.name).frames_out for c in self.pipeline.cameras)
        moved, self._last_out = out != self._last_out, out
        return moved or not self._streaming()

    def _beat_and_ping(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            self.root.beat()
        if self.notifier.watchdog_due() and self._progress():
            version = self.hot.active.version if self.hot else "no model"
            self.notifier.ping(f"running {version}")
