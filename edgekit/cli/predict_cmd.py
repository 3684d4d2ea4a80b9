"""`edgekit predict`: annotated images or video plus detections as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import _options as opt
from ._ui import console, progress_bar, table


@click.command("predict")
@click.argument("model")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: annotated images or video, and detections.jsonl.",
)
@click.option("--conf", default=None, type=float, help="Score threshold (default: manifest's).")
@click.option("--iou", default=None, type=float, help="NMS IoU threshold (default: manifest's).")
@opt.artifact_format
@opt.artifact_precision
@opt.threads
@opt.model_file_options
def predict(
    model: str,
    source: Path,
    out: Path,
    conf: float | None,
    iou: float | None,
    format_: str | None,
    precision: str | None,
    threads: int | None,
) -> None:
    """Detect objects in SOURCE (an image, a folder of images or a video file)."""
    from ..media import iter_media, media_kind, video_fps
    from .predict_sinks import ImageSink, VideoSink

    detector = opt.open_detector(model, format_, precision, threads)
    kind = media_kind(source)
    out.mkdir(parents=True, exist_ok=True)
    sink = (
        VideoSink(out / f"{source.stem}.mp4", video_fps(source))
        if kind == "video"
        else ImageSink(out)
    )
    counts: dict[str, int] = {}
    frames = 0
    jsonl = out / "detections.jsonl"
    with jsonl.open("w") as lines, sink, progress_bar() as bar:
        task = bar.add_task(f"predicting ({detector.artifact.key})", total=None)
        for item in iter_media(source):
            detections = detector(item.image, conf=conf, iou=iou)
            sink.write(item, detections, detector.labels)
            records = detections.to_records(detector.labels)
            lines.write(
                json.dumps(
                    {
                        "source": str(source),
                        "name": item.name,
                        "index": item.index,
                        "detections": records,
                    }
                )
                + "\n"
            )
            for record in records:
                counts[record["label"]] = counts.get(record["label"], 0) + 1
            frames += 1
            bar.advance(task)
    console.print(
        table(
            f"{frames} image(s), {sum(counts.values())} detections",
            ["class", "detections"],
            sorted(counts.items()),
        )
    )
    console.print(f"Annotated output: [bold]{sink.location}[/]\nDetections: [bold]{jsonl}[/]")
