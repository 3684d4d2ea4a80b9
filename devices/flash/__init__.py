"""Flashing bundles onto devices: checked, atomic, reversible, for one board or a fleet.

Host side (this package) plans and sends; the device side (``agent.py``, run by the device's
own Python) verifies, switches the ``current`` link atomically, runs the health check and rolls
back. See samples/DEVICE_SETUP.md for what a device needs.
"""

from __future__ import annotations

from .deploy import FlashResult, FlashSettings, flash, flash_async, rollback_async, status_async
from .fleet import Host, deploy_fleet, load_inventory
from .targets import FlashError, Target, parse_target

__all__ = ["FlashError", "FlashResult", "FlashSettings", "Host", "Target", "deploy_fleet",
           "flash", "flash_async", "load_inventory", "parse_target", "rollback_async",
           "status_async"]
