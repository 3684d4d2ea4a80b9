"""The device side of a flash, live: ``edgekit serve`` and its systemd unit.

The service runs the live pipeline on the version the ``current`` link names, swaps in a newly
flashed version between two frames, puts it on probation against the previous one on the same
live frames and rolls back by itself when it fails. See service.py for the control loop.
"""

from __future__ import annotations

from .config import (
           ModelConfig,
           ProbationConfig,
           ServiceConfig,
           StatusConfig,
           load_service_config,
           parse_service_config,
)
from .service import Service
from .unit import UnitSettings, render_unit, write_unit

__all__ = ["ModelConfig", "ProbationConfig", "Service", "ServiceConfig", "StatusConfig",
           "UnitSettings", "load_service_config", "parse_service_config", "render_unit",
           "write_unit"]
