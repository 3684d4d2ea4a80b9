"""`edgekit batch`: a bundle over a video archive on Ray (a thin layer over edgekit.batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import _options as opt
from ._ui import console, progress_bar, table, write_json


@click.command("batch")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (re-running into it resumes the run).")
@click.option("--every", type=click.IntRange(1), default=None,
              help="Process every N-th frame (default: every frame).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Process about F frames per second of video instead of --every.")
@click.option("--sink", type=click.Choice(["parquet", "jsonl"]), default="parquet",
              show_default=True, help="Format of the per-frame detection files.")
@click.option("--track", is_flag=True, help="Track objects (ByteTrack) and write track ids.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Analytics file (YAML/TOML): counting lines and zones; implies --track.")
@opt.ray_address
@opt.ray_workers
@click.option("--board", default=None,
              help="Board profile whose artifact the workers run (default: this host's).")
@click.option("--segment-seconds", type=click.FloatRange(min=0, min_open=True),
              default=None, help="Length of the time segments videos are cut into "
              "(default: 300).")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="CPUs each worker reserves (and its inference threads).")
@click.option("--conf", default=None, type=float, help="Score threshold (default: manifest's).")
@click.option("--iou", default=None, type=float, help="NMS IoU threshold (default: manifest's).")
@opt.artifact_format
@opt.artifact_precision
@opt.json_file
@opt.model_file_options
def batch_command(model: str, inputs: tuple[str, ...], out: Path, every: int | None,
                  fps: float | None, sink: str, track: bool, config_path: str | None,
                  address: str | None, workers: int | None, board: str | None,
                  segment_seconds: float | None, cpus_per_worker: float, conf: float | None,
                  iou: float | None, format_: str | None, precision: str | None,
                  json_path: str | None) -> None:
    """Run MODEL over videos (files, folders, globs, .txt lists) on Ray, into Parquet.

    Without --address, Ray starts on this machine for the run. Re-running the same command
    skips segments that are already complete.
    """
    from ..batch import DEFAULT_SEGMENT_SECONDS, run

    analytics = None
    if config_path:
        from ..analytics import load_config

        analytics = load_config(config_path)
    settings: dict[str, Any] = dict(
        every=every, fps=fps, sink=sink, track=track or analytics is not None,
        analytics=analytics, address=address, workers=workers, board=board,
        segment_seconds=segment_seconds or DEFAULT_SEGMENT_SECONDS,
        cpus_per_worker=cpus_per_worker, conf=conf, iou=iou, format=format_,
        precision=precision)
    with progress_bar() as bar:
        task = bar.add_task("starting Ray", total=None)

        def show(p: Any) -> None:
            bar.update(task, total=p.frames_total, completed=p.frames_done,
                       description=f"videos {p.videos_done}/{p.videos_total}, "
                       f"frames at {p.fps:.1f} fps")

        summary = run(model, list(inputs), out, progress=show,
                      file_options=opt.file_options(), **settings)
    _print(summary)
    write_json(json_path, summary)
    if summary["totals"]["failed"]:
        raise SystemExit(1)


def _print(summary: dict[str, Any]) -> None:
    rows = [(v["video_id"], v["status"], v["frames_processed"], v["detections"],
             ", ".join(f"{k}:{n}" for k, n in v["per_class"].items()) or "-")
            for v in summary["videos"]]
    t = summary["totals"]
    m = summary["manifest"]
    console.print(table(f"{t['videos']} video(s), {t['frames']} frames, {t['detections']} "
                        f"detections in {t['seconds']:.1f} s ({m['artifact']})",
                        ["video", "status", "frames", "detections", "per class"], rows))
    if t["segments_skipped"]:
        console.print(f"resumed: {t['segments_skipped']} of {t['segments']} segments were "
                      "already complete", highlight=False)
    for v in summary["videos"]:
        for error in v["errors"]:
            console.print(f"[red]{v['source']}:[/] {error}", highlight=False)
        if "analytics" in v:
            console.print(f"[bold]{v['video_id']}[/] analytics: {v['analytics']}",
                          highlight=False)
    ran = sorted({f"{w['hostname']}:{w['executed_on']}" for w in m["workers"]})
    console.print(f"workers: {len(m['workers'])} ({', '.join(ran)})", highlight=False)
    console.print(f"Output: [bold]{summary['out']}[/] (detections/, summary.json, manifest.json)")
