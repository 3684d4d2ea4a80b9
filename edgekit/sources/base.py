"""What every source is: offline ones deliver every frame in order, live ones only the newest.

Live cameras and streams produce frames whether or not anyone is ready for them. Queueing them
is how other tools end up minutes behind the camera, so a live source runs its capture in its
own thread and keeps one slot: a new frame replaces an unread one (counted as dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgekitError
from ..types import Frame

log = logging.getLogger("edgekit.sources")


class SourceError(EdgekitError):
    """A source could not deliver frames (a camera that never answered, a dead URL)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    """How a source opens, reads and reconnects.

    Attributes:
        open_timeout_s: Longest wait for a stream to open (OpenCV's CAP_PROP_OPEN_TIMEOUT_MSEC).
        read_timeout_s: Longest wait for one frame before the stream counts as frozen.
        backoff_initial_s: First wait before a reconnect attempt.
        backoff_max_s: Longest wait between reconnect attempts (the wait doubles up to this).
        connect_timeout_s: A live source that has not delivered one frame this long after it
            started gives up with an error (a wrong URL, a dead camera); 0 (the default here,
            for services whose camera may boot later) waits forever; `edgekit run` gives 30 s.
            A source that delivered frames and then died keeps reconnecting: that is what
            reconnecting is for.
        loop: Offline sources start again at the end instead of finishing (soak tests, demos).
    """

    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 2.0
    connect_timeout_s: float = 0.0
    loop: bool = False


@dataclass(slots=True)
class SourceStats:
    """Counters a source keeps; read by the pipeline's metrics."""

    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    errors: int = 0
    connected: bool = False
    status: str = "starting"
    last_error: str = ""
    last_frame_ns: int = 0
    reconnect_times_s: list[float] = field(default_factory=list)
    attempts: int = 0  # opens tried, the first one included
    down_total_s: float = 0.0  # finished outages after the first frame, in seconds
    down_since: float | None = None  # time.monotonic() when the current outage began

    def down_s(self) -> float:
        """Seconds without frames since the first one, the current outage included."""
        ongoing = time.monotonic() - self.down_since if self.down_since is not None else 0.0
        return round(self.down_total_s + ongoing, 3)


class Source(ABC):
    """A stream of frames from one URI.

    ``read(timeout)`` returns the next frame to process, ``None`` when none came within the
    timeout (live sources) and raises ``EOFError`` once an offline source is exhausted.
    """

    live: bool = False

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        self.uri = uri
        self.settings = settings or SourceSettings()
        self.stats = SourceStats()

    def start(self) -> None:  # noqa: B027 - optional hook; offline sources need none
        """Starts capturing (live sources start their thread here)."""

    @abstractmethod
    def read(self, timeout: float = 1.0) -> Frame | None:
        """Returns the next frame, None if none arrived in time; EOFError at the end."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases the device or connection."""

    def frames(self) -> Iterator[Frame | None]:
        """Every frame until the end, in order (None for one that could not be read): for
        offline sources, whose ``read`` ends with EOFError."""
        while True:
            try:
                yield self.read()
            except EOFError:
                return

    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LatestSlot:
    """One-frame mailbox: ``put`` replaces an unread frame, ``get`` waits for a new one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.overwritten = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.overwritten += 1
            self._frame = frame
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame


class LiveSource(Source):
    """A source whose frames come on their own clock; capture runs in a daemon thread.

    Subclasses implement ``_open`` (raise on failure), ``_grab`` (a BGR image, or None when
    the stream failed or froze) and ``_release``. The thread reconnects with exponential
    backoff, so a stream that is offline at start, drops or freezes comes back by itself.
    """

    live = True

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._failed: SourceError | None = None

    @abstractmethod
    def _open(self) -> object:
        """Opens the device or stream and returns a handle; raises on failure."""

    @abstractmethod
    def _grab(self, handle: object) -> np.ndarray | None:
        """Reads one image, or returns None when the stream ended, failed or froze."""

    def _release(self, handle: object) -> None:  # noqa: B027 - optional hook
        """Closes a handle from ``_open``."""

    def start(self) -> None:
        if self._thread is None:
            # daemon: a driver call stuck in C (a wedged USB camera) cannot keep the process up
            self._thread = threading.Thread(target=self._run, name=f"capture {self.uri}",
                                            daemon=True)
            self._thread.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame, None if none came in time; raises SourceError once given up."""
        self.start()
        frame = self._slot.get(timeout)
        if frame is None and self._failed is not None:
            raise self._failed
        return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A blocked read returns within read_timeout_s; wait a little longer than that.
            self._thread.join(self.settings.read_timeout_s + 1.0)

    def _run(self) -> None:
        backoff = self.settings.backoff_initial_s
        started = time.monotonic()
        lost_at: float | None = None
        while not self._stop.is_set():
            handle = self._try_open()
            if handle is None:
                lost_at = lost_at or time.monotonic()
                if self._give_up(started):
                    return
                self._wait_retry(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
                continue
            try:
                got_one = self._pump(handle, lost_at)
            finally:
                self._release_quietly(handle)
            self.stats.connected = False
            if self._stop.is_set():
                break
            lost_at = time.monotonic()
            if self.stats.frames:
                self.stats.down_since = self.stats.down_since or lost_at
                log.warning("%s: stream lost (%s); reconnecting", self.uri,
                            self.stats.last_error)
            if got_one:
                backoff = self.settings.backoff_initial_s
            elif self._give_up(started):
                return
            else:  # opened, then nothing: back off as after a failed open
                self._wait_retry(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
        self.stats.status = "stopped"

    def _wait_retry(self, backoff: float) -> None:
        """Logs edgekit's own line for the retry, then waits ``backoff`` (or until stopped)."""
        log.warning("%s: %s; retry %d in %.2f s", self.uri, self.stats.last_error or
                    "no frames", self.stats.attempts, backoff)
        self._stop.wait(backoff)

    def _give_up(self, started: float) -> bool:
        """Ends a source that never delivered a frame within connect_timeout_s."""
        limit = self.settings.connect_timeout_s
        if self.stats.frames or not limit or time.monotonic() - started < limit:
            return False
        self.stats.status = "failed"
        self._failed = SourceError(
            f"{self.uri}: no frame within {limit:g} s ({self.stats.attempts} attempts; last: "
            f"{self.stats.last_error or 'no frames'}).",
            hint="Check the address, the credentials and that the camera is on; "
                 "--connect-timeout S waits longer (0: forever).")
        self.stats.last_error = self._failed.message  # the pipeline logs it as the camera ends
        return True

    def _try_open(self) -> object | None:
        self.stats.status = "connecting"
        if self.stats.attempts:
            self.stats.reconnects += 1  # every retry after the first attempt counts
        self.stats.attempts += 1
        try:
            handle = self._open()
        except Exception as exc:  # a driver or network failure: report, back off, retry
            self.stats.errors += 1
            self.stats.last_error = f"open failed: {exc}"
            self.stats.status = "offline (retrying)"
            return None
        self.stats.connected = True
        self.stats.status = "streaming"
        return handle

    def _pump(self, handle: object, lost_at: float | None) -> bool:
        """Reads until the stream fails; returns whether any frame arrived."""
        got_one = False
        while not self._stop.is_set():
            try:
                image = self._grab(handle)
            except Exception as exc:
                image = None
                self.stats.last_error = f"read failed: {exc}"
            if image is None:
                self.stats.errors += 1
                self.stats.last_error = self.stats.last_error or "stream ended or froze"
                self.stats.status = "lost (reconnecting)"
                return got_one
            now = time.time_ns()
            if not got_one and lost_at is not None:
                self.stats.reconnect_times_s.append(round(time.monotonic() - lost_at, 3))
            if not got_one and self.stats.down_since is not None:
                self.stats.down_total_s += time.monotonic() - self.stats.down_since
                self.stats.down_since = None
                log.warning("%s: back after %.1f s", self.uri, self.stats.reconnect_times_s[-1]
                            if self.stats.reconnect_times_s else 0.0)
            if not got_one:
                self.stats.last_error = ""  # streaming again: the old error no longer holds
            got_one = True
            self.stats.frames += 1
            self.stats.last_frame_ns = now
            self._slot.put(Frame(image, now, self._index, self.uri))
            self.stats.dropped = self._slot.overwritten
            self._index += 1
        return got_one

    def _release_quietly(self, handle: object) -> None:
        try:
            self._release(handle)
        except Exception as exc:  # closing a broken stream may fail too; nothing to do then
            self.stats.last_error = f"close failed: {exc}"
