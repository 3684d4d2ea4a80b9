"""`edgekit serve` and `edgekit service install`: the live pipeline as a device service."""

from __future__ import annotations

import logging
import signal
from dataclasses import replace

import click

from ._ui import console, write_json

_EXAMPLE = """
Example camera.yaml:

\b
    sources: ["rtsp://cam-01/stream"]
    sinks: ["events.jsonl"]
    analytics: {lines: [{name: stop, start: [0, 0.6], end: [1, 0.6]}], relative: true}
    probation: {frames: 300, seconds: 60}
    status: {listen: "127.0.0.1:8787"}
"""


@click.command("serve", epilog=_EXAMPLE)
@click.option("--root", required=True, type=click.Path(file_okay=False),
              help="Install root that `edgekit flash` writes (its `current` link is followed).")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Service file (YAML/TOML): sources, sinks, analytics, model, probation, "
                   "status.")
@click.option("--listen", default=None,
              help="Status endpoint HOST:PORT (default: the config's, 127.0.0.1:8787); '' "
                   "turns it off.")
@click.option("--token", default=None, envvar="EDGEKIT_STATUS_TOKEN",
              help="Token the status endpoint requires (needed off loopback).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: until stopped).")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.01), default=0.25,
              show_default=True, help="Seconds between looks at the `current` link.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the final summary as JSON to this file.")
def serve_command(root, config_path, listen, token, duration, poll_s, json_path) -> None:
    """Run the live pipeline on the model flashed under --root, swapping in new versions.

    A new version (a flash, a rollback) is loaded beside the running one, swapped in between
    two frames and kept on probation; if it fails on live frames the service goes back to the
    previous version by itself and records why (`edgekit status` shows it).
    """
    from ..devices.service import Service, load_service_config

    config = load_service_config(config_path)
    if listen is not None or token is not None:
        status = replace(config.status, **{k: v for k, v in
                                            (("listen", listen), ("token", token))
                                            if v is not None})
        config = replace(config, status=status)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    service = Service(root, config, poll_s=poll_s)
    # SIGTERM (systemctl stop) and Ctrl-C stop the pipeline cleanly.
    handlers = {sig: signal.signal(sig, lambda *_: service.stop())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = service.run(duration=duration)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    info = summary["service"]
    console.print(f"stopped: {info['version']} ({info['swaps']} swaps, {info['rollbacks']} "
                  f"rollbacks, {summary.get('frames_out', 0)} frames)", highlight=False)
    write_json(json_path, summary)


@click.group("service")
def service_group() -> None:
    """Install `edgekit serve` as a systemd service."""


@service_group.command("install")
@click.option("--root", required=True, type=click.Path(file_okay=False),
              help="Install root that `edgekit flash` writes.")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="The service file.")
@click.option("--user", "user_unit", is_flag=True,
              help="A user unit (systemctl --user), for a device where root is not wanted.")
@click.option("--name", default="edgekit", show_default=True, help="Unit name.")
@click.option("--run-as", default=None, help="Account a system unit runs as (default root).")
@click.option("--python", "python", default=None,
              help="Interpreter with edgekit (default: this one).")
@click.option("--watchdog-sec", type=click.IntRange(2), default=30, show_default=True,
              help="systemd restarts the service when frames stop this long.")
@click.option("--unit-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the unit (default /etc/systemd/system, or "
                   "~/.config/systemd/user with --user).")
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of writing.")
def install_command(root, config_path, user_unit, name, run_as, python, watchdog_sec, unit_dir,
                    print_only) -> None:
    """Write a systemd unit that runs `edgekit serve` (restart on failure, watchdog, journal)."""
    import sys
    from pathlib import Path

    from ..devices.service import UnitSettings, load_service_config, render_unit, write_unit

    load_service_config(config_path)  # never install a service that cannot start
    settings = UnitSettings(root=Path(root), config=Path(config_path), user=user_unit,
                            name=name, run_as=run_as, python=python or sys.executable,
                            watchdog_s=watchdog_sec)
    if print_only:
        click.echo(render_unit(settings), nl=False)
        return
    path = write_unit(settings, unit_dir)
    ctl = "systemctl --user" if user_unit else "systemctl"
    console.print(f"wrote {path}\nstart it:  {ctl} daemon-reload && {ctl} enable --now {name}\n"
                  f"logs:      journalctl {'--user ' if user_unit else ''}-u {name} -f"
                  + ("\nat boot without a login: loginctl enable-linger" if user_unit else ""),
                  highlight=False)
