"""`edgekit predict`: annotated images or video plus detections as JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import _options as opt
from ._ui import progress_bar, results, say, table, warn


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
    from ..outputs import OutputFolder, check_separate
    from ..sinks import open_sink
    from ..sources import open_source

    path, kind = _file_source(source)
    detector = opt.open_detector(model, format_, precision, threads, explain=explain)
    check_separate([path], out)  # before anything is written
    reader = open_source(str(path))
    annotated = open_sink(str(out / f"{path.stem}.mp4") if kind == "video" else f"{out}/")
    jsonl = open_sink(str(out / "detections.jsonl"))
    for sink in (annotated, jsonl):  # what the pipeline tells its sinks: one camera, its source
        sink.cameras, sink.sources = [path.stem], {path.stem: reader}
    folder = OutputFolder(out)
    names = ([Path(annotated.uri).name] if kind == "video" else
             [annotated.target(path.stem, i).name for i in range(len(reader.files))])
    targets = folder.claim([*names, "detections.jsonl"])  # refuses files edgekit did not write
    try:
        frames, counts, failed = _detect_all(reader, (annotated, jsonl), detector, kind,
                                             conf=conf, iou=iou)
    finally:
        for target in targets:
            if target.exists():
                folder.wrote(target)
    _summary(kind, frames, counts, failed, annotated, jsonl)


def _detect_all(reader: Any, sinks: tuple[Any, Any], detector: Any, kind: str, *,
                conf: float | None, iou: float | None) -> tuple[int, dict[str, int], list[str]]:
    """Every frame of ``reader`` through the detector into ``sinks``, in order; a folder's
    unreadable images are skipped with a warning. Returns (frames, counts, skipped)."""
    from ..errors import DatasetError
    from ..sinks import Result

    counts: dict[str, int] = {}
    frames, position = 0, 0
    failed: list[str] = []
    camera = next(iter(sinks[0].cameras))
    files = getattr(reader, "files", None)
    with reader, progress_bar() as bar:
        for sink in sinks:
            sink.open()
        try:
            task = bar.add_task(f"predicting ({detector.artifact.key})",
                                total=len(files) if files else None)
            for frame in reader.frames():
                position += 1
                bar.advance(task)
                if frame is None:  # a file that cannot be read: skip it, say so, go on
                    why = _skipped(reader, files, position - 1)
                    if files is not None and len(files) == 1:
                        raise why  # one image given, and it is unreadable: nothing to do
                    failed.append(why.message)
                    warn(f"skipped: {why.message}")
                    continue
                detections = detector(frame.image, conf=conf, iou=iou)
                name = files[frame.index].stem if files else f"{camera}_{frame.index:06d}"
                result = Result(camera, frame, detections, detector.labels,
                                tags={"name": name})
                for sink in sinks:
                    sink.write(result)
                for record in detections.to_records(detector.labels):
                    counts[record["label"]] = counts.get(record["label"], 0) + 1
                frames += 1
        finally:
            for sink in sinks:
                sink.close()
    if kind == "video" and not frames:
        raise DatasetError(f"{reader.uri}: the video holds no readable frames.")
    return frames, counts, failed


def _skipped(reader: Any, files: list[Path] | None, position: int) -> Any:
    """The error of the frame that ``reader`` could not deliver at ``position``."""
    from ..errors import DatasetError

    if files is not None:
        return reader.skipped[files[position]]
    return DatasetError(f"{reader.uri}: {reader.stats.last_error}.")


def _summary(kind: str, frames: int, counts: dict[str, int], failed: list[str],
             annotated: Any, jsonl: Any) -> None:
    """The table on stdout, where the outputs are on stderr; exit 1 when images were skipped."""
    from ..errors import DatasetError, EdgekitError

    unit = "frame(s)" if kind == "video" else "image(s)"
    title = f"{frames} {unit}, {sum(counts.values())} detections" + (
        f", {len(failed)} skipped" if failed else "")
    results.print(table(title, ["class", "detections"], sorted(counts.items())))
    say("Annotated output: [bold]{}[/]\nDetections: [bold]{}[/]", annotated.describe(),
        jsonl.describe())
    if failed:
        shown = "; ".join(failed[:3])
        error = DatasetError if not frames else EdgekitError
        what = "frames" if kind == "video" else "images"
        exc = error(f"{len(failed)} of {len(failed) + frames} {what} could not be read "
                    f"({shown}{'; ...' if len(failed) > 3 else ''}).",
                    hint="Replace or remove those files; the others were processed.")
        exc.exit_code = 1
        raise exc


def _file_source(source: str) -> tuple[Path, str]:
    """SOURCE as a path and its kind ("images" or "video"), as the sources registry reads it;
    a live URI is pointed to `edgekit run` instead of read as a path."""
    from ..errors import DatasetError, EdgekitError
    from ..sources import source_kind
    from ..sources.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    kind = source_kind(source)
    if kind not in ("images", "video"):
        raise EdgekitError(
            f"{source} is a live source; `edgekit predict` reads image and video files.",
            hint=f"Run it live: edgekit run MODEL --source '{source}' --sink out.mp4 "
                 "[--duration SECONDS]")
    path = Path(source.removeprefix("file://"))
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder.")
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise DatasetError(
            f"{path}: unknown media type '{path.suffix.lower()}'.",
            hint=f"Images: {', '.join(sorted(IMAGE_SUFFIXES))}; videos: "
                 f"{', '.join(sorted(VIDEO_SUFFIXES))}; or a folder of images.")
    return path, kind
