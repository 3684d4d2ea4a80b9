"""`edgekit rollout`: a bundle onto a fleet in waves, halting on failures, resumable."""

from __future__ import annotations

import asyncio

import click

from ..errors import EdgekitError
from ._ui import console, table, write_json
from .flash_cmd import STATUS_STYLE, _flash_options, _ssh_options


@click.command("rollout")
@click.argument("bundle", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--inventory", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fleet inventory (YAML), as for `edgekit flash --inventory`.")
@click.option("--canary", type=click.IntRange(0), default=1, show_default=True,
              help="Devices updated first, alone.")
@click.option("--waves", default="10%,50%,100%", show_default=True,
              help="Cumulative shares of the fleet updated after each wave.")
@click.option("--halt-on", default="1", show_default=True,
              help="Halt at this many failed devices (1, 2, ...) or this share of the devices "
                   "tried (5%).")
@click.option("--parallel", type=click.IntRange(1), default=None,
              help="Devices flashed at once [default: 4; on --resume: as started].")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="Extra tries within a wave for an unreachable device.")
@click.option("--rollback-wave", is_flag=True,
              help="On a halt, switch the devices of the halted wave back too.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              default="edgekit-rollout.sqlite", show_default=True,
              help="The rollout's state file (SQLite).")
@click.option("--resume", is_flag=True,
              help="Continue the rollout in --state (after an interruption or a halt).")
@_flash_options
@_ssh_options
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the summary and one record per device as JSON.")
def rollout_command(bundle, inventory, canary, waves, halt_on, parallel, retries,
                    rollback_wave, state_path, resume, board, keep, max_latency_ms,
                    verdict_timeout, identity, known_hosts, accept_new_host_key, remote_python,
                    no_golden, json_path) -> None:
    """Roll BUNDLE out to the fleet: a canary, then waves, each only while the fleet is healthy.

    The state is kept in --state; after the host was interrupted (or after fixing what halted
    the rollout) `edgekit rollout --resume` continues without flashing any device twice.
    """
    from ..devices.flash import FlashSettings
    from ..devices.flash.rollout import (
        Rollout,
        RolloutSettings,
        parse_halt,
        parse_waves,
    )
    from ..devices.flash.rollout_state import RolloutStore

    store = RolloutStore(state_path)
    try:
        if resume:
            rollout = Rollout.resume(store, parallel=parallel, on_device=_progress)
        else:
            if not bundle or not inventory:
                raise EdgekitError("Give BUNDLE and --inventory FILE (or --resume).",
                                   hint="e.g. edgekit rollout out/bundle --inventory fleet.yaml")
            settings = RolloutSettings(
                canary=canary, waves=parse_waves(waves), halt_on=parse_halt(halt_on),
                parallel=parallel or 4, retries=retries, rollback_wave=rollback_wave,
                flash=FlashSettings(board=board, keep=keep, golden=not no_golden,
                                    max_latency_ms=max_latency_ms,
                                    verdict_timeout_s=verdict_timeout))
            overrides = {"identity": identity, "known_hosts": known_hosts,
                         "python": remote_python,
                         "accept_new_host_key": accept_new_host_key or None}
            rollout = Rollout.start(store, bundle, inventory, settings,
                                    {k: v for k, v in overrides.items() if v is not None},
                                    on_device=_progress)
        summary = asyncio.run(rollout.run())
    finally:
        store.close()
    _show(summary)
    write_json(json_path, summary)
    if summary["status"] != "complete":
        raise EdgekitError(
            f"The rollout of {summary['version']} is {summary['status']}"
            + (f" at wave {summary['halted_wave']}: {summary['halted']}" if summary["halted"]
               else f": {summary['counts']}") + ".",
            hint=f"Fix the devices above, then `edgekit rollout --resume --state {state_path}`.")


def _progress(row) -> None:
    style = STATUS_STYLE.get(row.status, "white")
    console.print(f"wave {row.wave}: {row.name} [{style}]{row.status}[/] {row.after or ''}",
                  highlight=False)


def _show(summary: dict) -> None:
    rows = [(d["name"], d["wave"], f"[{STATUS_STYLE.get(d['status'], 'white')}]{d['status']}[/]",
             d["before"] or "-", d["after"] or "-", d["verdict"] or "-",
             f"{d['seconds']:.1f}s" if d["seconds"] is not None else "-",
             (d["reason"] or "").splitlines()[0][:80] if d["reason"] else "")
            for d in summary["devices"]]
    console.print(table(f"rollout {summary['version']}: {summary['status']} "
                        f"({summary['seconds']:.1f} s, {summary['counts']})",
                        ["device", "wave", "result", "before", "after", "verdict", "time",
                         "reason"], rows))
