"""`edgekit bench --on/--inventory` (measure on devices) and the cross-board table.

Kept apart from bench_cmd.py: that module holds the local benchmark; this one adds the
options and the output of a run on boards over SSH, and `bench compare`'s board table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click
from rich.text import Text

from ..errors import EdgekitError
from ._ui import results as out
from ._ui import say, table

STATUS_STYLE = {"ok": "green", "partial": "yellow", "refused": "red", "unreachable": "red",
                "failed": "red"}
_SHOWN = ("device", "board", "artifact", "p50_ms", "p99_ms", "fps", "first_ms", "mAP50-95",
          "golden", "util_%", "max_temp_C", "throttled", "would_run")


def remote_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a run on devices, added to `bench run` (SSH ones as `flash` has them)."""
    from .flash_cmd import _ssh_options

    func = _ssh_options(func)
    for option in reversed([
        click.option("--on", "on", default=None, metavar="TARGET",
                     help="Benchmark on this device: ssh://user@host[:port]/install/root "
                          "(or a local install root). Its own Python, edgekit and runtime run "
                          "the artifact from a scratch copy; the installed model is untouched."),
        click.option("--inventory", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Benchmark on every device of a fleet inventory (as `flash`'s)."),
        click.option("--parallel", type=click.IntRange(1), default=4, show_default=True,
                     help="Devices benchmarked at once (--inventory)."),
        click.option("--peak-seconds", type=click.FloatRange(0), default=1.0,
                     show_default=True, help="Each of the two windows of the device's matmul "
                     "peak probe (utilisation); 0 skips it."),
    ]):
        func = option(func)
    return func


def wants_remote(remote: dict[str, Any]) -> bool:
    return bool(remote.get("on") or remote.get("inventory"))


def run_remote(model: str, remote: dict[str, Any], *, board: str | None, threads: int | None,
               runs: int, duration: float | None, warmup: int, val: str | None, matrix: bool,
               outputs: dict[str, str | None], history_path: str | None,
               no_history: bool) -> None:
    """Runs the bench on the devices, prints the per-device outcome and the board table."""
    from ..bench import History
    from ..devices.flash import load_inventory, parse_target
    from ..devices.remote.bench import RemoteSettings, bench_fleet, host_for

    ssh = {"identity": remote.get("identity"), "known_hosts": remote.get("known_hosts"),
           "python": remote.get("remote_python"),
           "accept_new_host_key": remote.get("accept_new_host_key") or None}
    if remote.get("on") and remote.get("inventory"):
        raise EdgekitError("Give --on TARGET or --inventory FILE, not both.")
    hosts = load_inventory(remote["inventory"], **ssh) if remote.get("inventory") else \
        [host_for(parse_target(remote["on"], **ssh))]

    def progress(device: str, message: str) -> None:
        say("[cyan]{}[/] {}", device, message)

    settings = RemoteSettings(runs=runs, duration_s=duration, warmup=warmup, threads=threads,
                              matrix=matrix, board=board, val=val,
                              golden=not remote.get("no_golden"), progress=progress,
                              peak_seconds=remote.get("peak_seconds", 1.0))
    devices = asyncio.run(bench_fleet(model, hosts, settings=settings,
                                      parallel=remote.get("parallel") or 4))
    out.print(table(f"bench {model} on {len(devices)} device(s)",
                    ["device", "result", "board", "measured", "time", "reason"],
                    [(d.device, Text(d.status, style=STATUS_STYLE.get(d.status, "white")),
                      d.board, ", ".join(r.artifact for r in d.results) or "-",
                      f"{d.seconds:.1f}s", (d.reason or "").split("\n")[0])
                     for d in devices]))
    results = [r for d in devices for r in d.results]
    if results:
        show_board_table([r.to_dict() for r in results], title=f"{model} across boards",
                         outputs=outputs)
    if results and not no_history:
        history = History(history_path)
        ids = [history.append(r) for r in results]
        say("history: runs {} in {}", ", ".join(map(str, ids)), history.path)
    _write_json(outputs.get("json"), devices)
    failed = [d for d in devices if not d.ok]
    if len(devices) == 1 and failed:
        raise EdgekitError(failed[0].reason or failed[0].status, hint=failed[0].hint)
    if failed:
        raise EdgekitError(f"{len(failed)} of {len(devices)} device(s) did not finish the "
                           f"bench ({', '.join(sorted({d.status for d in failed}))}).",
                           hint="Read each device's reason above; the others' results are kept.")


def _write_json(path: str | None, devices: list) -> None:
    from ._ui import write_json

    write_json(path, {"devices": [d.to_dict() for d in devices]})


def notes_for(results: list[dict[str, Any]]) -> list[str]:
    """What the figures mean: how FLOPs were counted, each device's peak."""
    notes = []
    compute = next((r.get("compute") for r in results if r.get("compute")), None)
    if compute and compute.get("flops"):
        notes.append(f"FLOPs per inference: {compute['flops'] / 1e9:.3f} G, counted from "
                     f"{compute['flops_source']} ({compute['flops_method']}).")
    elif compute:
        notes.append(f"FLOPs not counted: {compute.get('flops_source')}.")
    peaks: dict[str, str] = {}
    for r in results:
        peak = (r.get("compute") or {}).get("peak") or {}
        if peak.get("gflops"):
            from ..bench.boards import device_of

            peaks.setdefault(device_of(r), f"{peak['gflops']:.1f} GFLOP/s fp32 matmul "
                             f"(n={peak.get('n')}, {peak.get('threads')} threads)")
    notes += [f"peak of {device}: {text}; util_% = achieved GFLOP/s at p50 / peak"
              for device, text in peaks.items()]
    notes += sorted({f"{r['artifact']}: util_% {(r['compute'] or {}).get('note')}"
                     for r in results if (r.get("compute") or {}).get("note")})
    if any((r.get("fingerprint") or {}).get("emulated") for r in results):
        notes.append("emulated devices: their latency is the emulator's, not a board's; "
                     "kept apart in the history (board '<name>@emulated').")
    return notes


def show_board_table(results: list[dict[str, Any]], *, title: str,
                     outputs: dict[str, str | None]) -> None:
    """Prints the device x artifact table and writes --markdown/--plot/--csv of it."""
    import csv

    from ..bench import boards

    rows = boards.rows(results)
    notes = notes_for(results)
    out.print(table(title, list(_SHOWN), [[r[k] for k in _SHOWN] for r in rows]))
    for note in notes:
        say("[dim]{}[/]", note)
    if outputs.get("markdown"):
        written = boards.write_markdown(outputs["markdown"], rows, title=title, notes=notes)
        say("written: [bold]{}[/]", written)
    if outputs.get("plot"):
        say("written: [bold]{}[/]", boards.write_plot(outputs["plot"], rows, title=title))
    if outputs.get("csv"):
        with open(outputs["csv"], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(boards.COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        say("written: [bold]{}[/]", outputs["csv"])


def compare_boards(history_path: str | None, *, model: str | None, board: str | None,
                   outputs: dict[str, str | None]) -> None:
    """`bench compare` without run ids: the newest result per device and artifact."""
    from ..bench import History
    from ..bench.boards import latest
    from ._ui import write_json

    history = History(history_path)
    results = latest(history, model=model, board=board)
    if not results:
        raise EdgekitError(f"No runs{f' of {model!r}' if model else ''} in {history.path}.",
                           hint="Run `edgekit bench MODEL --inventory fleet.yaml` first.")
    show_board_table(results, title=f"{model or 'all models'} across boards ({history.path})",
                     outputs=outputs)
    write_json(outputs.get("json"), {"results": results})
