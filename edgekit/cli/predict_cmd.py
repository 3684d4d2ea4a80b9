"""`edgekit predict`: annotated images or video plus detections as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import click

from . import _options as opt
from ._ui import progress_bar, results, say, table, warn

# Live sources belong to `edgekit run` (threads, reconnects, newest frame only); predict reads
# files, where every frame is wanted in order.
_LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https", "csi", "picam", "testsrc", "v4l2")


@click.command("predict")
@click.argument("model")
@click.argument("source")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (not the input's): annotated images or video, and detections.jsonl.",
)
@click.option("--conf", default=None, type=float, help="Score threshold (default: manifest's).")
@click.option("--iou", default=None, type=float, help="NMS IoU threshold (default: manifest's).")
@opt.artifact_format
@opt.artifact_precision
@opt.threads
@opt.model_file_options
@opt.explain
def predict(
    model: str,
    source: str,
    out: Path,
    conf: float | None,
    iou: float | None,
    format_: str | None,
    precision: str | None,
    threads: int | None,
    explain: bool,
) -> None:
    """Detect objects in SOURCE (an image, a folder of images or a video file).

    Live sources (rtsp://, http://, cameras) run with `edgekit run`. Unreadable images in a
    folder are skipped with a warning; the command then exits 1 after the others are done.
    """
    from ..errors import DatasetError, EdgekitError
    from ..media import iter_media, media_kind, output_names, video_fps
    from ..outputs import OutputFolder, check_separate
    from .predict_sinks import ImageSink, VideoSink

    path = _file_source(source)
    detector = opt.open_detector(model, format_, precision, threads, explain=explain)
    kind = media_kind(path)
    check_separate([path], out)  # before anything is written
    folder = OutputFolder(out)
    names = [f"{path.stem}.mp4"] if kind == "video" else output_names(path)
    targets = folder.claim([*names, "detections.jsonl"])
    sink = (VideoSink(folder, targets[0], video_fps(path)) if kind == "video"
            else ImageSink(folder, targets[:-1]))
    jsonl = targets[-1]
    counts: dict[str, int] = {}
    frames = 0
    failed: list[tuple[str, str]] = []
    try:
        with jsonl.open("w") as lines, sink, progress_bar() as bar:
            task = bar.add_task(f"predicting ({detector.artifact.key})",
                                total=len(names) if kind != "video" else None)
            for item in iter_media(path):
                bar.advance(task)
                if item.image is None:  # a folder's unreadable file: skip it, say so, go on
                    failed.append((item.name, item.error or "unreadable"))
                    warn(f"skipped: {item.error}")
                    continue
                detections = detector(item.image, conf=conf, iou=iou)
                sink.write(item, detections, detector.labels)
                records = detections.to_records(detector.labels)
                lines.write(json.dumps({"source": str(path), "name": item.name,
                                        "index": item.index, "detections": records}) + "\n")
                for record in records:
                    counts[record["label"]] = counts.get(record["label"], 0) + 1
                frames += 1
    finally:
        if jsonl.exists():
            folder.wrote(jsonl)
    unit = "frame(s)" if kind == "video" else "image(s)"
    title = f"{frames} {unit}, {sum(counts.values())} detections" + (
        f", {len(failed)} skipped" if failed else "")
    results.print(table(title, ["class", "detections"], sorted(counts.items())))
    say("Annotated output: [bold]{}[/]{}\nDetections: [bold]{}[/]", sink.location,
        f" ({sink.note})" if sink.note else "", jsonl)
    if failed:
        shown = "; ".join(f"{name}: {why}" for name, why in failed[:3])
        error = DatasetError if not frames else EdgekitError
        exc = error(f"{len(failed)} of {len(failed) + frames} images could not be read "
                    f"({shown}{'; ...' if len(failed) > 3 else ''}).",
                    hint="Replace or remove those files; the others were processed.")
        exc.exit_code = 1
        raise exc


def _file_source(source: str) -> Path:
    """SOURCE as a path; a live URI is pointed to `edgekit run` instead of read as a path."""
    from ..errors import EdgekitError

    scheme = urlsplit(source).scheme.lower()
    if scheme in _LIVE_SCHEMES or source.startswith("/dev/video"):
        raise EdgekitError(
            f"{source} is a live source; `edgekit predict` reads image and video files.",
            hint=f"Run it live: edgekit run MODEL --source '{source}' --sink out.mp4 "
                 "[--duration SECONDS]")
    return Path(source.removeprefix("file://"))
