"""BenchResult: one measurement, with everything needed to trust or reproduce it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(kw_only=True)
class BenchResult:
    """One benchmark of one model file (or bundle artifact) on one runtime.

    ``latency_ms`` is the model's inference alone (what runtime tools such as benchmark_app
    report); for detectors ``stages_ms`` adds pre/post-processing and ``end_to_end_ms`` the
    whole frame.
    """

    model: str
    artifact: str
    format: str
    backend: str
    precision: str
    executed_on: str
    threads: int | None
    runs: int
    warmup: int
    load_ms: float
    first_inference_ms: float
    latency_ms: dict[str, float]
    fps: float
    peak_rss_mb: float
    inputs: dict[str, dict[str, Any]]
    fingerprint: dict[str, Any]
    timestamp: str
    requested: str | None = None
    stages_ms: dict[str, dict[str, float]] | None = None
    end_to_end_ms: dict[str, float] | None = None
    accuracy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    # Filled by on-board runs (`bench --on`): FLOPs, achieved GFLOP/s and the fraction of the
    # board's matmul peak; temperature/clocks/throttling over the run; the golden replay.
    compute: dict[str, Any] | None = None
    thermal: dict[str, Any] | None = None
    golden: dict[str, Any] | None = None
    sha256: str | None = None  # the artifact file's, so a later choice finds its figures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self) -> dict[str, Any]:
        """A flat summary row for tables, CSV and Markdown."""
        acc = self.accuracy or {}
        return {
            "artifact": self.artifact, "backend": self.backend, "precision": self.precision,
            "executed_on": self.executed_on, "threads": self.threads,
            **{f"{k}_ms": round(self.latency_ms[k], 3) for k in ("p50", "p90", "p99", "mean")},
            "fps": round(self.fps, 1),
            "e2e_p50_ms": round(self.end_to_end_ms["p50"], 3) if self.end_to_end_ms else None,
            "load_ms": round(self.load_ms, 1), "first_ms": round(self.first_inference_ms, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            # mAP in points, rounded: a fraction to 16 digits reads as noise in a table.
            "map50_95_pts": _points(acc.get("map50_95")), "map50_pts": _points(acc.get("map50")),
        }


def _points(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 2)
