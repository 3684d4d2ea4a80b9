"""The typed, keyword-only settings of a batch run."""

from __future__ import annotations

from dataclasses import dataclass

from ..analytics.config import AnalyticsConfig
from ..errors import EdgekitError

# Five minutes: a keyframe seek per segment costs well under 1 % of decoding it, a lost
# worker loses at most this much work, and 1,000 hours still give 12,000 segments to spread
# over a cluster (docs/scale-out.md measures the trade).
DEFAULT_SEGMENT_SECONDS = 300.0


class BatchSettingsError(EdgekitError):
    """Batch settings that contradict each other or are out of range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSettings:
    """How a batch run samples, writes and spreads its work.

    Attributes:
        every: Process every N-th frame (default 1: all of them).
        fps: Process about F frames per second of video instead (per video's own rate).
        sink: Output format of the per-frame rows: ``parquet`` or ``jsonl``.
        track: Track objects (ByteTrack) and write track ids.
        analytics: Counting lines and zones (``--config``); implies tracking.
        address: None starts Ray here; ``auto``, ``host:port`` or ``ray://host:port`` joins.
        workers: Number of actors (default: the cluster's CPUs / ``cpus_per_worker``).
        cpus_per_worker: CPUs each actor reserves (also its inference threads).
        board: Board profile whose artifact choice the workers make (default: this host).
        format: Only artifacts of this format.
        precision: Only artifacts of this precision.
        conf: Score threshold (default: the manifest's).
        iou: NMS IoU threshold (default: the manifest's).
        segment_seconds: Length of the time segments long videos are cut into.
        object_store_mb: Object store size of a local Ray (None: Ray's default).
    """

    every: int | None = None
    fps: float | None = None
    sink: str = "parquet"
    track: bool = False
    analytics: AnalyticsConfig | None = None
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    board: str | None = None
    format: str | None = None
    precision: str | None = None
    conf: float | None = None
    iou: float | None = None
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    object_store_mb: int | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.fps is not None:
            raise BatchSettingsError("Give --every or --fps, not both.",
                                     hint="--every N keeps every N-th frame; --fps F about F "
                                     "frames per second.")
        if self.every is not None and self.every < 1:
            raise BatchSettingsError(f"--every must be 1 or more (got {self.every}).")
        if self.fps is not None and self.fps <= 0:
            raise BatchSettingsError(f"--fps must be above 0 (got {self.fps}).")
        if self.segment_seconds <= 0:
            raise BatchSettingsError(f"Segments must last above 0 s (got {self.segment_seconds}).")
        if self.workers is not None and self.workers < 1:
            raise BatchSettingsError(f"--workers must be 1 or more (got {self.workers}).")
        if self.cpus_per_worker <= 0:
            raise BatchSettingsError("CPUs per worker must be above 0.")
