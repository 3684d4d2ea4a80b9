"""`edgekit run`: a detector live on cameras, streams or files, with sinks and analytics."""

from __future__ import annotations

import signal
from typing import Any

import click

from ..errors import EdgekitError
from . import _options as opt
from ._ui import console, say, table, write_json
from ._ui import results as out


def _open_model(model: str, board: str | None, format_: str | None, precision: str | None,
                threads: int | None, explain: bool) -> tuple[Any, str]:
    """The model on this machine's (or the named board's) runner; returns it and what runs it."""
    try:
        from ..devices.runners import load_runner
    except ImportError:  # an install without the devices part: plain Detector
        load_runner = None
    if load_runner is not None:
        runner = load_runner(model, board=board, format=format_, precision=precision,
                             threads=threads, file_options=opt.file_options())
        opt.say_head(runner.detector.manifest)
        opt.show_choice(runner.plan, explain=explain)
        return runner, f"{runner.board.name}: {runner.artifact.key} on {runner.executed_on}"
    if board:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("edgekit.devices", purpose="--board")
    detector = opt.open_detector(model, format_, precision, threads, explain=explain)
    return detector, f"{detector.artifact.key} on {detector.backend.executed_on}"


def _status(pipeline: Any) -> str:
    s = pipeline.summary()
    cams = "  ".join(
        f"{name}: {c['status']} {c['fps_out']:.1f} fps age p50 "
        f"{c['frame_age_ms'].get('p50', 0):.0f} ms drop {c['dropped']} rec {c['reconnects']}"
        for name, c in s["cameras"].items())
    return f"[bold]{s['frames_out']}[/] frames  {cams}"


def _print_summary(summary: dict[str, Any]) -> None:
    def ms(window: dict[str, Any], key: str) -> str:
        return f"{window[key]:.0f}" if key in window else "-"

    rows = [(name, c["status"], c["frames_in"], c["frames_out"], f"{c['fps_out']:.1f}",
             c["dropped"], c["reconnects"], ms(c["frame_age_ms"], "p50"),
             ms(c["frame_age_ms"], "p99"), ms(c["end_to_end_ms"], "p50"),
             ms(c["end_to_end_ms"], "p99"))
            for name, c in summary["cameras"].items()]
    out.print(table(f"{summary['frames_out']} frames in {summary['duration_s']:.1f} s "
                        "(latencies in ms)",
                        ["camera", "status", "in", "out", "fps", "drop", "reconn", "age p50",
                         "age p99", "e2e p50", "e2e p99"], rows))
    out.print(table("stage latency (ms)", ["stage", "count", "p50", "p90", "p99", "max"],
                        [(k, v.get("count"), v.get("p50"), v.get("p90"), v.get("p99"),
                          v.get("max")) for k, v in summary["stages_ms"].items()]))
    rows = [row for name, c in summary["cameras"].items()
            for row in analytics_rows(name, c.get("analytics") or {})]
    if rows:
        out.print(table("analytics", ["camera", "counter", "measure", "total", "detail"], rows))
    for name, c in summary["cameras"].items():
        if c["last_error"] and c["status"] != "failed":  # a failed camera ends the run: error
            say("[yellow]{}:[/] {}", name, c["last_error"])
    for uri, error in summary["sink_errors"].items():
        say("[red]sink {} failed:[/] {}", uri, error)
    for uri, where in summary["sinks"].items():
        if uri not in summary["sink_errors"]:
            say("sink: [bold]{}[/]", where)


def analytics_rows(camera: str, counts: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One row per line direction and per zone: total, then the split by class."""
    rows: list[tuple[Any, ...]] = []
    for line, directions in counts.get("lines", {}).items():
        for direction, by_class in directions.items():
            detail = ", ".join(f"{k} {v}" for k, v in sorted(by_class.items()))
            rows.append((camera, f"line {line}", direction, sum(by_class.values()), detail))
    for zone, z in counts.get("zones", {}).items():
        dwell = z.get("mean_dwell_s")
        detail = f"inside now {z.get('occupancy', 0)}" + (
            f", mean dwell {dwell:.1f} s" if dwell is not None else "")
        rows.append((camera, f"zone {zone}", "entered", z.get("entered", 0), detail))
    return rows


@click.command("run")
@click.argument("model")
@click.option("--source", "sources", multiple=True, required=True,
              help="A source URI (repeatable): video file, image folder/glob, /dev/video0, "
                   "rtsp://, http(s)://, csi://0, picam://0, testsrc://.")
@click.option("--sink", "sinks", multiple=True,
              help="A sink URI (repeatable): out.mp4, events.jsonl, frames/ (one JPEG a frame), "
                   "http://127.0.0.1:8080, mqtt://host:1883/topic, window.")
@click.option("--board", default=None, help="Board profile whose runner runs the model "
              "(default: detected); see `edgekit devices`.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Analytics file (YAML/TOML): tracker, counting lines, zones.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: at the end of the files, or Ctrl-C).")
@click.option("--loop", is_flag=True, help="Start files and folders again at their end.")
@click.option("--connect-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds a live source may take to deliver its first frame before the run "
                   "fails (0: wait forever). A source that worked and then drops keeps "
                   "reconnecting.")
@click.option("--conf", default=None, type=float, help="Score threshold (default: manifest's).")
@click.option("--iou", default=None, type=float, help="NMS IoU threshold (default: manifest's).")
@click.option("--quiet", is_flag=True, help="No live status line.")
@click.option("--max-error-rate", default=0.5, show_default=True,
              type=click.FloatRange(0, 1), help="Stop with an error when more than this "
              "fraction of frames fails for --error-window seconds (1 = only when all fail).")
@click.option("--error-window", default=10.0, show_default=True,
              type=click.FloatRange(min=0), help="Seconds the error rate must stay too high.")
@opt.artifact_format
@opt.artifact_precision
@opt.threads
@opt.explain
@opt.json_file
@opt.model_file_options
def run_command(model: str, sources: tuple[str, ...], sinks: tuple[str, ...], board: str | None,
                config_path: str | None, duration: float | None, loop: bool,
                connect_timeout: float, conf: float | None,
                iou: float | None, quiet: bool, max_error_rate: float, error_window: float,
                format_: str | None, precision: str | None,
                threads: int | None, explain: bool, json_path: str | None) -> None:
    """Run MODEL live on one or more sources, with tracking, analytics and sinks."""
    from ..analytics import load_config
    from ..pipeline import ModelSettings, Pipeline, PipelineSettings
    from ..pipeline.health import HealthSettings
    from ..sources import SourceSettings

    analytics = load_config(config_path) if config_path else None
    runner, executed = _open_model(model, board, format_, precision, threads, explain)
    settings = PipelineSettings(source=SourceSettings(loop=loop,
                                                      connect_timeout_s=connect_timeout),
                                model=ModelSettings(conf=conf, iou=iou),
                                health=HealthSettings(max_error_rate=max_error_rate,
                                                      window_s=error_window))
    pipeline = Pipeline(runner, list(sources), list(sinks), analytics=analytics,
                        settings=settings)
    say("running [bold]{}[/] on {} source(s); Ctrl-C stops", executed, len(sources))
    # SIGTERM (systemd, docker stop) stops as cleanly as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        announce = _announce_views(pipeline)
        if quiet:
            summary = _run(pipeline, duration, announce)
        else:
            with console.status("starting") as status:
                summary = _run(pipeline, duration,
                               lambda p: (announce(p), status.update(_status(p))))
    finally:
        signal.signal(signal.SIGTERM, previous)
    for uri, view in summary["sinks"].items():
        if uri.startswith("http://"):
            say("live view was at {}", view)
    summary["model"] = executed
    _print_summary(summary)
    write_json(json_path, summary)
    if not summary.get("interrupted"):  # Ctrl-C before the first frame: the user knows
        _fail_on_dead_sources(summary)
    if summary.get("failed"):
        raise RunFailedError(summary["failed"])


def _fail_on_dead_sources(summary: dict[str, Any]) -> None:
    """A run whose live camera never delivered a frame did nothing: say so, exit non-zero."""
    from ..sources import SourceError

    dead = [(name, c) for name, c in summary["cameras"].items()
            if c["status"] == "failed" or (c["live"] and c["frames_in"] == 0)]
    if dead:
        name, c = dead[0]
        why = (c["last_error"] if c["status"] == "failed" and c["last_error"] else
               f"{c['uri']}: no frame in {summary['duration_s']:.0f} s "
               f"({c['last_error'] or 'nothing received'})")
        raise SourceError(
            f"{name}: {why}" + (
                f" ({len(dead) - 1} more camera(s) too)" if len(dead) > 1 else ""),
            hint="Check the address and that the camera is on; `--connect-timeout S` waits "
                 "longer for a slow camera.")


class RunFailedError(EdgekitError):
    """The run stopped (or ended) because its frames kept failing."""

    exit_code = 1

    def __init__(self, failure: dict[str, Any]) -> None:
        first = failure.get("first_error") or {}
        super().__init__(
            f"the run failed: {failure['reason']}; first error ({first.get('camera', '?')}): "
            f"{first.get('error', 'unknown')}",
            hint="Fix the first error (often a manifest that does not match its model, or a "
                 "source the model cannot take); --max-error-rate/--error-window tune when a "
                 "run counts as failed.")


def _announce_views(pipeline: Any) -> Any:
    """An on_tick that prints each live view's URL (with its token) once, as soon as it is up.

    A view bound beyond localhost needs its token; printed at the end of the run it came too
    late to open the view.
    """
    shown: set[str] = set()

    def announce(_: Any) -> None:
        for sink in pipeline.sinks:
            if hasattr(sink, "url") and getattr(sink, "listening", False) and sink.uri not in shown:
                shown.add(sink.uri)
                console.print(f"live view: {sink.announcement()}", highlight=False, markup=False)

    return announce


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run(pipeline: Any, duration: float | None, on_tick: Any) -> dict[str, Any]:
    try:
        return pipeline.run(duration=duration, on_tick=on_tick)
    except KeyboardInterrupt:
        # run() stopped the pipeline in its finally
        return {**pipeline.summary(), "interrupted": True}
