"""Cameras -> preprocess -> one shared inference -> postprocess + tracking -> sinks, overlapped.

Each stage runs in its own thread and hands work on through a bounded queue, so throughput
approaches 1 / (slowest stage) rather than 1 / (sum of stages). How much work may wait is set
by per-camera credits: an offline camera keeps ``queue_size`` frames in flight (throughput),
a live camera one (a frame is read only when inference can take it next, so it is at most one
inference old when inference starts; the source's own slot already keeps only the newest).

Cameras share one inference call per tick when the model takes a batch (``export --batch N``
or a dynamic batch), as DeepStream's nvstreammux does: a tick takes the frames waiting, and
waits at most ``batch_timeout_s`` for the other cameras that are delivering. A camera that is
late costs the others that wait once per tick; one that delivered nothing for ``stale_s``
(dead, reconnecting) is not waited for at all. A fixed-batch model runs a partial batch
padded with zeros and drops the padding's results (``Backend.run``); each result goes back to
the camera whose frame it was.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import EdgekitError
from ..sinks.base import Result, Sink
from ..sources import Source, SourceSettings, open_source
from ..types import Frame
from .health import Health, HealthSettings
from .metrics import Metrics
from .model import ModelSettings, StagedModel, staged

log = logging.getLogger("edgekit.pipeline")
_POLL_S = 0.2  # how often blocked stages look at the stop flag


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    """How the pipeline queues and which settings its sources and model get.

    Attributes:
        queue_size: Frames in flight per offline camera (live cameras always use 1).
        sink_queue: Results waiting per sink; a live camera's result is dropped for a sink
            whose queue is full instead of slowing everything down.
        source: Timeouts and reconnect backoff of the sources opened from URIs.
        model: Score and IoU thresholds.
        join_timeout_s: Longest wait for one thread when stopping (nothing may hang).
        health: When failing frames stop the run (error rate over a time window).
        batch_timeout_s: Longest wait, per tick, for the frames of the other delivering
            cameras once one frame is ready (nvstreammux's batched-push-timeout); 0 takes
            only the frames already waiting.
        stale_s: A camera without a frame this long is not waited for (dead or reconnecting).
    """

    queue_size: int = 3
    sink_queue: int = 8
    source: SourceSettings = field(default_factory=SourceSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    join_timeout_s: float = 5.0
    health: HealthSettings = field(default_factory=HealthSettings)
    batch_timeout_s: float = 0.01
    stale_s: float = 1.0


@dataclass(slots=True)
class _Item:
    camera: _Camera
    frame: Frame | None = None  # None marks the end of this camera
    tensor: Any = None
    context: Any = None
    output: Any = None


@dataclass(slots=True, eq=False)
class _Camera:
    name: str
    source: Source
    credits: threading.Semaphore
    analytics: Any = None
    ended: bool = False
    last_seen: float = field(default_factory=time.monotonic)  # its last frame at inference


class _SinkRunner:
    """One sink in its own thread, behind its own bounded queue."""

    def __init__(self, sink: Sink, metrics: Metrics, size: int, stop: threading.Event) -> None:
        self.sink, self.metrics, self.stop = sink, metrics, stop
        self.queue: queue.Queue[Result | None] = queue.Queue(maxsize=size)
        self.failed = False
        self.thread = threading.Thread(target=self._run, name=f"sink {sink.uri}", daemon=True)

    def fail(self, exc: BaseException) -> None:
        self.failed = True
        message = exc.message if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
        self.metrics.sink_errors[self.sink.uri] = message
        log.error("sink %s failed: %s", self.sink.uri, message)

    def offer(self, result: Result, *, lossless: bool) -> None:
        if self.failed:
            return
        if not (lossless and self.sink.lossless):
            try:
                self.queue.put_nowait(result)
            except queue.Full:
                self.metrics.sink_dropped[self.sink.uri] = (
                    self.metrics.sink_dropped.get(self.sink.uri, 0) + 1)
            return
        while not self.failed:
            try:
                self.queue.put(result, timeout=_POLL_S)
                return
            except queue.Full:
                if self.stop.is_set() and not self.thread.is_alive():
                    return

    def finish(self) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            result = self.queue.get()
            if result is None:
                break
            if self.failed:
                continue
            t0 = time.perf_counter()
            try:
                self.sink.write(result)
            except Exception as exc:  # one broken sink must not stop the others
                self.fail(exc)
                continue
            self.metrics.stage(f"sink:{self.sink.uri}", (time.perf_counter() - t0) * 1e3)
            self.metrics.camera(result.camera).end_to_end.add(
                (time.time_ns() - result.frame.timestamp_ns) / 1e6)
        try:
            self.sink.close()
        except Exception as exc:
            self.fail(exc)


class Pipeline:
    """Runs a detector on one or more sources and sends the results to sinks.

    Args:
        model: A ``Detector``, a ``StagedModel``, or any callable ``image -> Detections``
            (a board runner); all cameras share it.
        sources: URIs or ``Source`` objects (one camera each).
        sinks: ``Sink`` objects or sink URIs (see ``edgekit.sinks``).
        analytics: An ``AnalyticsConfig`` (tracking, lines, zones) applied to every camera.
        settings: Queues, timeouts and thresholds.
        names: Camera names (default cam0, cam1, ...).

    Example:
        pipeline = Pipeline(Detector.open("sample"), ["testsrc://"], ["out.mp4"])
        summary = pipeline.run(duration=10)
    """

    def __init__(self, model: Any, sources: Sequence[str | Source],
                 sinks: Sequence[str | Sink] = (), *, analytics: Any = None,
                 settings: PipelineSettings | None = None,
                 names: Sequence[str] | None = None) -> None:
        from ..sinks import open_sink

        if not sources:
            raise EdgekitError("No source given.", hint="Give at least one source URI.")
        self.settings = settings or PipelineSettings()
        model_settings = self.settings.model
        if analytics is not None and model_settings.track_conf is None:
            # The tracker's low-score boxes (tracker.detection_conf) are decoded for it alone.
            model_settings = replace(model_settings,
                                     track_conf=analytics.tracker.detection_conf)
        self.model: StagedModel = staged(model, settings=model_settings)
        names = list(names or [f"cam{i}" for i in range(len(sources))])
        opened = [s if isinstance(s, Source) else open_source(s, settings=self.settings.source)
                  for s in sources]
        self.cameras = [
            _Camera(name, src, threading.Semaphore(1 if src.live else self.settings.queue_size),
                    _analytics_for(analytics, self.model.labels))
            for name, src in zip(names, opened, strict=True)]
        self.sinks: list[Sink] = [s if isinstance(s, Sink) else open_sink(s) for s in sinks]
        self.metrics = Metrics()
        self.health = Health(self.settings.health)
        self._stop = threading.Event()
        self._infer_q: queue.Queue[_Item] = queue.Queue()  # bounded by the cameras' credits
        self._post_q: queue.Queue[list[_Item] | None] = queue.Queue(maxsize=2)
        self._runners: list[_SinkRunner] = []
        self._threads: list[threading.Thread] = []
        self._done = threading.Event()

    # ---- control -------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the sinks, then the sources' threads; returns at once.

        Raises:
            EdgekitError: a sink cannot open (a missing folder, a port in use), naming it.
                Nothing was started then: a run that would write nothing fails before any
                camera is opened, not after its whole duration.
        """
        self.metrics.started = time.monotonic()
        for sink in self.sinks:
            sink.stats_provider = self.summary
            sink.cameras = [cam.name for cam in self.cameras]
            sink.sources = {cam.name: cam.source for cam in self.cameras}
            runner = _SinkRunner(sink, self.metrics, self.settings.sink_queue, self._stop)
            try:
                sink.open()
            except Exception as exc:
                self._close_sinks()
                if isinstance(exc, EdgekitError):
                    raise
                raise EdgekitError(f"The sink {sink.uri} cannot open: {exc}.") from exc
            self._runners.append(runner)
        for runner in self._runners:
            runner.thread.start()
        threads = [threading.Thread(target=self._read_loop, args=(cam,), daemon=True,
                                    name=f"read {cam.name}") for cam in self.cameras]
        threads += [threading.Thread(target=self._infer_loop, name="inference", daemon=True),
                    threading.Thread(target=self._post_loop, name="postprocess", daemon=True)]
        for thread in threads:
            thread.start()
        self._threads = threads

    def _close_sinks(self) -> None:
        for runner in self._runners:
            try:
                runner.sink.close()
            except Exception as exc:  # closing after a failed start: report, go on
                log.warning("sink %s: close failed: %s", runner.sink.uri, exc)
        self._runners.clear()

    def stop(self) -> None:
        """Asks every stage to finish, waits for them (bounded) and releases the sources."""
        self._stop.set()
        deadline = time.monotonic() + self.settings.join_timeout_s * 2
        for thread in self._threads + [r.thread for r in self._runners]:
            thread.join(max(0.1, deadline - time.monotonic()))
        for cam in self.cameras:
            try:
                cam.source.close()
            except Exception as exc:
                cam.source.stats.last_error = f"close failed: {exc}"

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until every source has ended and all results reached the sinks."""
        return self._done.wait(timeout)

    def run(self, duration: float | None = None,
            on_tick: Callable[[Pipeline], None] | None = None, tick_s: float = 0.5) -> dict:
        """Starts, runs until the sources end or ``duration`` seconds pass, stops.

        Ctrl-C (KeyboardInterrupt) stops it cleanly too. Returns ``summary()``; its
        ``failed`` is set (with the first error) when frames kept failing (``health``).
        """
        self.start()
        end = None if duration is None else time.monotonic() + duration
        try:
            while not self.wait(tick_s if end is None else max(0.0, min(tick_s,
                                                                        end - time.monotonic()))):
                if on_tick is not None:
                    on_tick(self)
                if self.health.check(self._processed()) is not None:
                    log.error("stopping: %s", self.health.failure["reason"])
                    break
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            self.stop()
            self.health.final(self._processed())
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Counters, fps, latency percentiles and analytics totals so far."""
        out = self.metrics.summary({cam.name: cam.source for cam in self.cameras})
        for cam in self.cameras:
            if cam.analytics is not None:
                out["cameras"][cam.name]["analytics"] = cam.analytics.counts()
        out["sinks"] = {s.uri: s.describe() for s in self.sinks}
        out["failed"] = self.health.failure
        out["first_error"] = self.health.first_error
        return out

    def _processed(self) -> int:
        return sum(self.metrics.camera(cam.name).frames_out for cam in self.cameras)

    # ---- stages --------------------------------------------------------------------------

    def _read_loop(self, cam: _Camera) -> None:
        try:
            cam.source.start()
            while not self._stop.is_set():
                if not cam.credits.acquire(timeout=_POLL_S):
                    continue
                frame = self._next_frame(cam)
                if frame is None:
                    break
                t0 = time.perf_counter()
                try:
                    tensor, context = self.model.pre(frame.image)
                except Exception as exc:  # a frame the model cannot take: skip it, report it
                    cam.credits.release()
                    self._camera_error(cam, f"preprocess failed on frame {frame.index}: {exc}")
                    continue
                self.metrics.stage("preprocess", (time.perf_counter() - t0) * 1e3)
                self._infer_q.put(_Item(cam, frame, tensor, context))
        except EOFError:
            pass
        except Exception as exc:  # a source that cannot start (bad file): this camera ends
            self._camera_error(cam, exc.message if isinstance(exc, EdgekitError) else str(exc))
        finally:
            self._infer_q.put(_Item(cam))

    def _next_frame(self, cam: _Camera) -> Frame | None:
        """The next frame, or None when stopping; EOFError passes through at the end."""
        while not self._stop.is_set():
            frame = cam.source.read(_POLL_S * 2)
            if frame is not None:
                return frame
        return None

    def _camera_error(self, cam: _Camera, message: str) -> None:
        cam.source.stats.errors += 1
        cam.source.stats.last_error = message
        self.health.error(cam.name, message)
        log.error("%s (%s): %s", cam.name, cam.source.uri, message)

    def _infer_loop(self) -> None:
        live = sum(1 for _ in self.cameras)
        try:
            while live:
                try:
                    batch = [self._infer_q.get(timeout=_POLL_S)]
                except queue.Empty:
                    continue
                self._fill(batch)
                ends = [item for item in batch if item.frame is None]
                work = [item for item in batch if item.frame is not None]
                now = time.monotonic()
                for item in work:
                    item.camera.credits.release()  # the reader may fetch the next frame now
                    item.camera.last_seen = now
                for item in ends:
                    item.camera.ended = True
                live -= len(ends)
                if work:
                    self._infer(work)
        finally:
            self._put_post(None)

    def _fill(self, batch: list[_Item]) -> None:
        """Adds the frames waiting, then waits (bounded) for the delivering cameras'."""
        size = self.model.batch
        while len(batch) < size:
            try:
                batch.append(self._infer_q.get_nowait())
            except queue.Empty:
                break
        if len(batch) >= size or self.settings.batch_timeout_s <= 0:
            return
        now = time.monotonic()
        have = {id(item.camera) for item in batch}
        # Cameras worth waiting for: not in this batch yet, not ended, delivering lately.
        waiting = sum(1 for cam in self.cameras if id(cam) not in have and not cam.ended
                      and now - cam.last_seen < self.settings.stale_s)
        want = min(size, len(batch) + waiting)
        deadline = now + self.settings.batch_timeout_s
        while len(batch) < want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._infer_q.get(timeout=remaining))
            except queue.Empty:
                break

    def _infer(self, work: list[_Item]) -> None:
        now = time.time_ns()
        for item in work:
            self.metrics.camera(item.camera.name).frame_age.add(
                (now - item.frame.timestamp_ns) / 1e6)
        t0 = time.perf_counter()
        try:
            outputs = self.model.infer([item.tensor for item in work])
        except Exception as exc:
            for item in work:
                self._camera_error(item.camera, f"inference failed: {exc}")
            return
        self.metrics.stage("inference", (time.perf_counter() - t0) * 1e3)
        self.metrics.batch(len(work))
        for item, output in zip(work, outputs, strict=True):
            item.output = output
        self._put_post(work)

    def _put_post(self, work: list[_Item] | None) -> None:
        while True:
            try:
                self._post_q.put(work, timeout=_POLL_S)
                return
            except queue.Full:
                if self._stop.is_set() and work is not None:
                    return  # stopping: results nobody waits for may go

    def _post_loop(self) -> None:
        try:
            while True:
                try:
                    work = self._post_q.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if work is None:
                    break
                for item in work:
                    self._post(item)
        finally:
            for runner in self._runners:
                runner.finish()
            for runner in self._runners:
                runner.thread.join(self.settings.join_timeout_s)
            self._done.set()

    def _post(self, item: _Item) -> None:
        cam, frame = item.camera, item.frame
        t0 = time.perf_counter()
        try:
            detections = self.model.post(item.output, item.context, frame.image.shape)
        except Exception as exc:
            self._camera_error(cam, f"postprocess failed: {exc}")
            return
        t1 = time.perf_counter()
        self.metrics.stage("postprocess", (t1 - t0) * 1e3)
        events: list[dict[str, Any]] = []
        counts: dict[str, Any] = {}
        overlay = None
        if cam.analytics is not None:
            detections, events = cam.analytics.update(frame, detections, conf=self.model.conf)
            counts, overlay = cam.analytics.counts(), cam.analytics.draw
            self.metrics.stage("track", (time.perf_counter() - t1) * 1e3)
            for event in events:
                self.metrics.event(event["type"])
        tags = self.model.tags(item.output) if self.model.tags else {}
        if tags:  # e.g. the model version: every event says which model saw it
            events = [{**event, **tags} for event in events]
        counters = self.metrics.camera(cam.name)
        counters.frames_out += 1
        result = Result(cam.name, frame, detections, self.model.labels, events, counts, overlay,
                        tags)
        if not self._runners:
            counters.end_to_end.add((time.time_ns() - frame.timestamp_ns) / 1e6)
        for runner in self._runners:
            runner.offer(result, lossless=not cam.source.live)


def _analytics_for(config: Any, labels: list[str]) -> Any:
    if config is None:
        return None
    from ..analytics import Analytics

    return Analytics(config, labels)
