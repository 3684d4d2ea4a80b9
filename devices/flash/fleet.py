"""Many devices: an inventory file and a bounded-parallel deploy where one failure stops nothing.

Inventory (YAML)::

    defaults:                      # any host field, for every host
      python: /opt/edgekit/venv/bin/python
      known_hosts: ~/.ssh/known_hosts
    hosts:
      cam-01: {target: "ssh://pi@10.0.0.11/opt/edgekit", board: rpi5}
      cam-02: {target: "ssh://ubuntu@10.0.0.12", board: jetson-orin-nano}
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError, require

from .deploy import FlashResult, FlashSettings, flash_async
from .targets import Target, parse_target

HOST_FIELDS = {"target", "board", "python", "identity", "known_hosts", "root",
               "accept_new_host_key", "connect_timeout", "emulated"}


@dataclass(frozen=True, kw_only=True)
class Host:
    """One inventory entry: a name, where it is, and its board if known."""

    name: str
    target: Target
    board: str | None = None
    emulated: bool = False  # an emulated board (qemu): its bench results are kept apart


def load_inventory(path: str | Path, **overrides: Any) -> list[Host]:
    """Reads a fleet inventory; ``overrides`` (from the command line) win over its defaults.

    Raises:
        EdgekitError: the file is missing, not YAML, or an entry is malformed.
    """
    yaml = require("yaml", package="pyyaml", extra="flash", purpose="reading an inventory")
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EdgekitError(f"Cannot read the inventory {source}: {exc}",
                           hint="See samples/fleet.yaml for the format.") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise EdgekitError(f"{source}: no `hosts:` mapping (name -> {{target: ...}}).",
                           hint="See samples/fleet.yaml for the format.")
    defaults = data.get("defaults") or {}
    given = {k: v for k, v in overrides.items() if v is not None}
    out = []
    for name, entry in hosts.items():
        entry = {"target": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or "target" not in entry:
            raise EdgekitError(f"{source}: host '{name}' needs a `target:`.",
                               hint="e.g. cam-01: {target: 'ssh://pi@10.0.0.11'}")
        fields = {**defaults, **entry, **given}
        unknown = set(fields) - HOST_FIELDS
        if unknown:
            raise EdgekitError(f"{source}: host '{name}' has unknown fields: "
                               f"{', '.join(sorted(unknown))}.",
                               hint=f"Known fields: {', '.join(sorted(HOST_FIELDS))}.")
        uri, board = str(fields.pop("target")), fields.pop("board", None)
        emulated = bool(fields.pop("emulated", False))
        out.append(Host(name=str(name), target=parse_target(uri, **fields), board=board,
                        emulated=emulated))
    return out


async def deploy_fleet(bundle: str | Path | Bundle, hosts: list[Host], *,
                       settings: FlashSettings | None = None,
                       parallel: int = 4) -> list[FlashResult]:
    """Flashes every host, at most ``parallel`` at once; results in inventory order.

    The bundle is verified once here; each host's failure is its own result, never an
    exception that stops the others.
    """
    settings = settings or FlashSettings()
    loaded = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    gate = asyncio.Semaphore(max(parallel, 1))

    async def one(host: Host) -> FlashResult:
        async with gate:
            own = replace(settings, board=host.board or settings.board)
            result = await flash_async(loaded, host.target, settings=own)
            result.target = host.name
            return result

    return list(await asyncio.gather(*(one(h) for h in hosts)))
