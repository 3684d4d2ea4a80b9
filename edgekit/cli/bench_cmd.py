"""`edgekit bench`: latency, memory and accuracy of a model per board, with history.

`bench` is a group whose default command is `run`: `edgekit bench MODEL ...` is
`edgekit bench run MODEL ...`; `edgekit bench history` and `edgekit bench compare A B` read
the SQLite history. (A model file literally named `history` or `compare` needs `bench run`.)
"""

from __future__ import annotations

import click

from ..errors import EdgekitError
from . import _options as opt
from ._ui import results as out
from ._ui import say, table
from .bench_boards import compare_boards, remote_options, run_remote, wants_remote


class _DefaultRun(click.Group):
    """A group that runs `run` when the first argument is not one of its subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "MODEL [OPTIONS] | history | compare A B")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # `bench MODEL ...` runs `bench run`: its options are the ones a user types here, so
        # `edgekit bench --help` lists them instead of only --help.
        rows = [r for p in self.commands["run"].get_params(ctx)
                if (r := p.get_help_record(ctx)) is not None]
        with formatter.section("Options (of `bench MODEL`, i.e. `bench run MODEL`)"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


def _shapes(values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    from ..errors import EdgekitError

    shapes = {}
    for value in values:
        name, _, dims = value.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise EdgekitError(f"--shape '{value}' is not NAME=DxDxD (e.g. images=1x3x64x64).") \
                from None
        if not name or any(d < 1 for d in shapes[name]):
            raise EdgekitError(f"--shape '{value}' is not NAME=DxDxD with positive dims.")
    return shapes


@click.group("bench", cls=_DefaultRun, invoke_without_command=False)
def bench_group() -> None:
    """Benchmark a model or bundle (default), or show/compare the benchmark history.

    \b
    edgekit bench MODEL [options]      same as `edgekit bench run MODEL`
    edgekit bench history [--model M]  past runs, newest first
    edgekit bench compare ID_A ID_B    how a run changed
    edgekit bench MODEL --inventory F  on every device of a fleet, one table
    edgekit bench compare [--model M]  one table across boards, from the history
    """


_history_option = click.option(
    "--history", "history_path", type=click.Path(dir_okay=False), default=None,
    help="SQLite history file (default: $EDGEKIT_HISTORY or "
         "~/.local/share/edgekit/history.sqlite).")


@bench_group.command("run")
@click.argument("model")
@click.option("--board", default=None, help="Board profile (default: this machine's; "
              "`edgekit devices` lists them).")
@opt.artifact_format
@opt.artifact_precision
@click.option("--threads", type=int, default=None, help="Inference threads "
              "(default: the board's, capped at this machine's cores).")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--duration", type=float, default=None, help="Run for S seconds instead.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--shape", "shape", multiple=True, metavar="NAME=DxD..",
              help="Shape of a dynamic input (plain model files), e.g. images=1x3x64x64.")
@click.option("--val", default=None, help="Validation dataset (COCO/YOLO) for mAP.")
@click.option("--matrix", is_flag=True, help="Every artifact of the bundle, one row each.")
@click.option("--allow-fallback", is_flag=True,
              help="Let a missing accelerator (NPU) fall back to GPU/CPU, with a warning.")
@opt.json_file
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None)
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="PNG: latency vs accuracy per artifact.")
@_history_option
@click.option("--no-history", is_flag=True, help="Do not append to the history.")
@remote_options
def bench_run(model: str, board: str | None, format_: str | None, precision: str | None,
              threads: int | None, runs: int, duration: float | None, warmup: int,
              shape: tuple[str, ...], val: str | None, matrix: bool, allow_fallback: bool,
              json_path: str | None, csv_path: str | None, md_path: str | None,
              plot_path: str | None, history_path: str | None, no_history: bool,
              **remote) -> None:
    """Benchmark MODEL: a bundle, `sample`, or any .onnx/.tflite/OpenVINO .xml file.

    With --on TARGET or --inventory FLEET, on those devices instead (see bench_boards.py).
    """
    from ..bench import BenchSettings, History, bench, bench_matrix
    from ..bench import report as rep
    from ..errors import EdgekitError

    if threads is not None and threads < 1:
        raise EdgekitError(f"--threads must be at least 1 (got {threads}).")
    settings = BenchSettings(runs=runs, duration_s=duration, warmup=warmup,
                             shapes=_shapes(shape))
    settings.check()
    if wants_remote(remote):
        if format_ or precision or shape or allow_fallback:
            raise EdgekitError("--format/--precision/--shape/--allow-fallback are for this "
                               "machine; on devices edgekit measures what each board runs.",
                               hint="Add --matrix to measure every artifact a board can run.")
        run_remote(model, remote, board=board, threads=threads, runs=runs, duration=duration,
                   warmup=warmup, val=val, matrix=matrix, history_path=history_path,
                   no_history=no_history, outputs={"json": json_path, "csv": csv_path,
                                                   "markdown": md_path, "plot": plot_path})
        return
    dataset = None
    if val:
        from ..data.dataset import load_dataset

        dataset = load_dataset(val)
    if matrix:
        results = bench_matrix(model, settings=settings, board=board, threads=threads,
                               fallback=allow_fallback, val=dataset,
                               progress=lambda msg: say("{}", msg))
    else:
        results = [bench(model, settings=settings, board=board, format=format_,
                         precision=precision, threads=threads, fallback=allow_fallback,
                         val=dataset)]
    _print(model, results)
    for path, write in ((json_path, rep.write_json), (csv_path, rep.write_csv),
                        (md_path, rep.write_markdown), (plot_path, rep.write_plot)):
        if path:
            say("written: [bold]{}[/]", write(path, results))
    if not no_history:
        history = History(history_path)
        ids = [history.append(r) for r in results]
        say("history: run {} in {}", ", ".join(map(str, ids)), history.path)


# The terminal shows the essentials; JSON/CSV/Markdown carry every column.
_SHOWN = ("artifact", "precision", "executed_on", "p50_ms", "p99_ms", "fps", "e2e_p50_ms",
          "peak_rss_mb", "map50_95_pts")
_HISTORY_SHOWN = ("id", "timestamp", "artifact", "board", "executed_on", "precision", "p50_ms",
                  "fps")


def _print(model: str, results: list) -> None:
    rows = [{k: r.row()[k] for k in _SHOWN} for r in results]
    fp = results[0].fingerprint
    out.print(table(
        f"{model} on board profile '{fp['board']}' (this machine: {fp['detected_board']}, "
        f"{fp['cpu_model']})", list(_SHOWN), [list(r.values()) for r in rows]))
    if fp.get("emulated"):
        say("[yellow]note:[/] measured under emulation ({}): these latencies are not a real "
            "{}'s", fp["emulated"], fp["board"])
    for result in results:
        if result.requested and result.requested.lower() not in result.executed_on.lower():
            say("[yellow]note:[/] {} asked for {}, ran on {}", result.artifact,
                result.requested, result.executed_on)
        for note in result.notes:
            say("[yellow]note:[/] {}", note)


@bench_group.command("history")
@click.option("--model", default=None, help="Only runs whose model contains this text.")
@click.option("--board", default=None, help="Only runs on this board profile.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@_history_option
@opt.json_file
def bench_history(model: str | None, board: str | None, limit: int,
                  history_path: str | None, json_path: str | None) -> None:
    """List past benchmark runs, newest first."""
    from ..bench import History
    from ._ui import write_json

    history = History(history_path)
    rows = history.query(model=model, board=board, limit=limit)
    if not rows:
        say("no runs in {}", history.path)
    else:
        out.print(table(f"benchmark history ({history.path})", list(_HISTORY_SHOWN),
                            [[r[k] for k in _HISTORY_SHOWN] for r in rows]))
    write_json(json_path, {"runs": rows})


@bench_group.command("compare")
@click.argument("old_id", type=int, required=False)
@click.argument("new_id", type=int, required=False)
@click.option("--model", default=None, help="Board table: only runs whose model has this text.")
@click.option("--board", default=None, help="Board table: only this board profile.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="PNG: latency vs mAP, one series per board.")
@_history_option
@opt.json_file
def bench_compare(old_id: int | None, new_id: int | None, model: str | None,
                  board: str | None, md_path: str | None, plot_path: str | None,
                  history_path: str | None, json_path: str | None) -> None:
    """Compare two runs (OLD_ID NEW_ID), or without ids: one table across boards.

    The table has the newest run per device and artifact: p50/p99, fps, mAP, utilisation,
    temperature, and the artifact each board would run.
    """
    from ..bench import History

    if old_id is None or new_id is None:
        if old_id is not None:
            raise EdgekitError("Give two run ids (OLD_ID NEW_ID), or none for the board table.")
        compare_boards(history_path, model=model, board=board,
                       outputs={"json": json_path, "markdown": md_path, "plot": plot_path})
        return
    from ..bench.history import compare
    from ._ui import write_json

    history = History(history_path)
    old, new = history.get(old_id), history.get(new_id)
    rows = compare(old, new)
    out.print(table(
        f"run {old_id} ({old['artifact']}, {old['fingerprint']['board']}, {old['timestamp']}) "
        f"-> run {new_id} ({new['artifact']}, {new['fingerprint']['board']}, "
        f"{new['timestamp']})", ["metric", "old", "new", "change %"],
        [list(r.values()) for r in rows]))
    write_json(json_path, {"old": old_id, "new": new_id, "metrics": rows})
