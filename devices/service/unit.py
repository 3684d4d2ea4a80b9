"""The systemd unit that keeps ``edgekit serve`` running: restarts, watchdog, journal.

``Type=notify``: systemd counts the service as started once the pipeline runs (READY=1) and
restarts it when the WATCHDOG=1 pings stop (a hung runtime), not only when it exits.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIR = Path("/etc/systemd/system")
USER_DIR = Path("~/.config/systemd/user")
_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


@dataclass(frozen=True, kw_only=True)
class UnitSettings:
    """What the unit runs and how systemd keeps it alive.

    Attributes:
        root: The install root the flash writes (``--root``).
        config: The service file (cameras, sinks, probation).
        user: A user unit (``systemctl --user``) instead of a system one.
        name: The unit's name, without ``.service``.
        python: The interpreter that has edgekit (a venv's python on most devices).
        run_as: The account a system unit runs as (None: root).
        watchdog_s: WatchdogSec; the service pings at half of it while frames flow.
        restart_s: RestartSec after a failure.
        start_timeout_s: TimeoutStartSec: loading a model on a small board takes a while.
    """

    root: Path
    config: Path
    user: bool = False
    name: str = "edgekit"
    python: str = sys.executable
    run_as: str | None = None
    watchdog_s: int = 30
    restart_s: int = 5
    start_timeout_s: int = 300


def quote(arg: str) -> str:
    """One ExecStart argument, quoted as systemd.syntax(7) reads it (% and $ escaped)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(settings: UnitSettings) -> str:
    """The unit file's text."""
    s = settings
    root, config = Path(s.root).absolute(), Path(s.config).absolute()
    command = " ".join(quote(a) for a in (s.python, "-m", "edgekit", "serve", "--root",
                                          str(root), "--config", str(config)))
    unit = ["[Unit]", f"Description=edgekit device service ({root})"]
    if not s.user:  # a user manager cannot order itself after system targets
        unit += ["Wants=network-online.target", "After=network-online.target"]
    unit += ["StartLimitIntervalSec=600", "StartLimitBurst=10", "", "[Service]",
             "Type=notify", "NotifyAccess=main", f"ExecStart={command}",
             f"WorkingDirectory={str(config.parent).replace('%', '%%')}", "Restart=on-failure",
             f"RestartSec={s.restart_s}", f"WatchdogSec={s.watchdog_s}",
             f"TimeoutStartSec={s.start_timeout_s}", "TimeoutStopSec=30",
             "Environment=PYTHONUNBUFFERED=1", "StandardOutput=journal",
             "StandardError=journal", f"SyslogIdentifier={s.name}"]
    if s.run_as and not s.user:
        unit.append(f"User={s.run_as}")
    unit += ["", "[Install]", f"WantedBy={'default.target' if s.user else 'multi-user.target'}",
             ""]
    return "\n".join(unit)


def write_unit(settings: UnitSettings, directory: str | Path | None = None) -> Path:
    """Writes ``<name>.service`` (default: /etc/systemd/system, or ~/.config/systemd/user)."""
    folder = Path(directory or (USER_DIR if settings.user else SYSTEM_DIR)).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{settings.name}.service"
    path.write_text(render_unit(settings))
    return path
