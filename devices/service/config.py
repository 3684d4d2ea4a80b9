"""The service's file (``camera.yaml``): cameras, sinks, analytics, probation, status endpoint.

Example::

    sources: ["rtsp://cam-01/stream"]      # one camera per URI
    names: [gate]                           # optional camera names
    sinks: ["/var/lib/edgekit/events.jsonl", "mqtt://broker:1883/cams"]
    analytics:                              # the same keys as `edgekit run --config`
      lines: [{name: stop, start: [0, 0.6], end: [1, 0.6]}]
      relative: true
    model: {board: rpi5, threads: 4, conf: 0.3}
    probation: {frames: 300, seconds: 60, latency_p99_ms: 80}
    status: {listen: "127.0.0.1:8787"}      # another address needs `token:`
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit.analytics import AnalyticsConfig, parse_config
from edgekit.analytics.config import ConfigError, _known


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """How the active bundle is opened: board profile (None: detected), threads, thresholds."""

    board: str | None = None
    threads: int | None = None
    conf: float | None = None
    iou: float | None = None
    warmup: int = 3


@dataclass(frozen=True, kw_only=True)
class ProbationConfig:
    """The live checks a newly swapped model must pass before it is trusted.

    Attributes:
        frames: Frames on the new model that end the probation (healthy if nothing failed).
        seconds: The longest probation; whatever was measured by then decides.
        min_frames: Frames needed before latency is judged.
        latency_p99_ms: The SLO; None takes the bundle artifact's ``details.latency_slo_ms``,
            else ``latency_ratio`` times the previous model's live p99 plus
            ``latency_slack_ms``.
        latency_ratio: The relative SLO when no absolute one is given.
        latency_slack_ms: Added to the relative SLO: a p99 over a few dozen frames is nearly
            their maximum, and one scheduling hiccup must not roll a fast model back.
        shadow_every: Every how many frames the previous model runs on the same frame (beside
            the pipeline, sharing its CPU) so detection counts can be compared.
        min_compared: Frames compared before the counts are judged.
        min_detections: The previous model's detections (over the compared frames) below which
            a collapse cannot be told from an empty scene.
        collapse_ratio: New detections below this fraction of the previous model's: collapsed.
        explode_ratio: New detections above this multiple of the previous model's: exploded.
    """

    frames: int = 100
    seconds: float = 60.0
    min_frames: int = 10
    latency_p99_ms: float | None = None
    latency_ratio: float = 2.0
    latency_slack_ms: float = 10.0
    shadow_every: int = 3
    min_compared: int = 8
    min_detections: int = 5
    collapse_ratio: float = 0.2
    explode_ratio: float = 5.0


@dataclass(frozen=True, kw_only=True)
class StatusConfig:
    """The JSON status and /metrics endpoint; ``listen: ""`` turns it off."""

    listen: str = "127.0.0.1:8787"
    token: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Everything ``edgekit serve`` runs, read from the service's YAML/TOML file."""

    sources: tuple[str, ...]
    names: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()
    analytics: AnalyticsConfig | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    probation: ProbationConfig = field(default_factory=ProbationConfig)
    status: StatusConfig = field(default_factory=StatusConfig)


def load_service_config(path: str | Path) -> ServiceConfig:
    """Reads the service file; every error names the file and the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such service config file.",
                          hint="Write one (see `edgekit serve --help` for an example).")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # the parsers' messages carry line and column
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    return parse_service_config(data, where=str(path))


def parse_service_config(data: Any, *, where: str = "config") -> ServiceConfig:
    """Builds a ServiceConfig from parsed data."""
    top = {f.name for f in fields(ServiceConfig)}
    _known(data, top, where)
    sources = _strings(data.get("sources"), f"{where}: sources")
    if not sources:
        raise ConfigError(f"{where}: `sources:` lists no camera.",
                          hint='e.g. sources: ["rtsp://cam-01/stream"]')
    names = _strings(data.get("names"), f"{where}: names")
    if names and len(names) != len(sources):
        raise ConfigError(f"{where}: {len(names)} names for {len(sources)} sources.")
    analytics = data.get("analytics")
    return ServiceConfig(
        sources=sources, names=names, sinks=_strings(data.get("sinks"), f"{where}: sinks"),
        analytics=parse_config(analytics, where=f"{where}: analytics") if analytics else None,
        model=_section(ModelConfig, data.get("model"), f"{where}: model"),
        probation=_section(ProbationConfig, data.get("probation"), f"{where}: probation"),
        status=_section(StatusConfig, data.get("status"), f"{where}: status"))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}.")
    return tuple(value)


def _section(kind: type, value: Any, where: str) -> Any:
    if value is None:
        return kind()
    _known(value, {f.name for f in fields(kind)}, where)
    try:
        return kind(**value)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}.") from None
