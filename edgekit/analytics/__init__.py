"""Vehicle analytics: ByteTrack tracking, line-crossing counts, zone dwell times.

``import edgekit.analytics`` loads neither supervision nor trackers; ``Analytics`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    AnalyticsConfig,
    ConfigError,
    LineConfig,
    TrackerConfig,
    ZoneConfig,
    load_config,
    parse_config,
)

if TYPE_CHECKING:  # pragma: no cover
    from .analytics import Analytics


def __getattr__(name: str) -> Any:
    if name == "Analytics":
        from .analytics import Analytics

        return Analytics
    raise AttributeError(f"module 'edgekit.analytics' has no attribute '{name}'")


__all__ = ["Analytics", "AnalyticsConfig", "ConfigError", "LineConfig", "TrackerConfig",
           "ZoneConfig", "load_config", "parse_config"]
