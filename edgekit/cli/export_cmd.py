"""`edgekit export`: a PyTorch or ONNX model in, a verified bundle out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from . import _options as opt
from ._ui import console, points, results, say, table, write_json


@click.command("export")
@click.argument("model")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle directory to write (replaced atomically if it exists).",
)
@click.option(
    "--to", "formats", default="onnx", show_default=True,
    help="Comma-separated formats: onnx, openvino, tflite.",
)
@click.option(
    "--precision", "precisions", default="fp32", show_default=True,
    help="Comma-separated precisions for every format: fp32, fp16, int8.",
)
@click.option(
    "--calib", default=None,
    help="Calibration images for int8: a folder of images, a video, or a dataset.",
)
@click.option(
    "--calib-count", type=click.IntRange(1), default=None,
    help="Most calibration images to use (default 200).",
)
@click.option(
    "--val", default=None,
    help="Labelled dataset (COCO/YOLO) with the model's classes, or unlabelled footage (a "
         "video, a folder of images, a URI: label-free, scored against fp32's own "
         "detections): every artifact is measured against fp32 (required for fp16/int8).",
)
@click.option(
    "--address", default=None,
    help="Shard --val's labelled images over a Ray cluster's workers (edgekit[scale]): auto, "
         "HOST:PORT or ray://HOST:PORT; the same numbers as without (latency not measured).",
)
@click.option(
    "--max-drop", type=float, default=1.0, show_default=True,
    help="Largest mAP@0.5:0.95 drop vs fp32 (points) an artifact may have.",
)
@click.option(
    "--time-budget", type=click.FloatRange(min=0), default=600, show_default=True,
    metavar="SECONDS",
    help="Seconds the whole export may take before the INT8 fallback search stops starting "
         "candidates (the best measured one is kept); 0: no limit.",
)
@click.option(
    "--scheme", type=click.Choice(["u8s8", "s8s8"]), default=None,
    help="ONNX INT8 scheme (default: u8s8 on x86, s8s8 on Arm; s8s8 for TensorRT).",
)
@click.option(
    "--threads", type=click.IntRange(1), default=2, show_default=True,
    help="Inference threads while measuring latency.",
)
@click.option(
    "--batch", default="1", show_default=True,
    help="Images per inference call of every artifact: N, or 'dynamic' (ONNX, OpenVINO). "
         "Cameras of `edgekit run` share one call when the artifact takes a batch.",
)
@click.option(
    "--imgsz",
    type=click.IntRange(32),
    default=None,
    help="Square input size (default: the model's own, else 640).",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights file for a MODEL given as 'package.module:factory'.",
)
@click.option("--labels", default=None, help="Comma-separated class names (default: model's).")
@click.option("--name", default=None, help="Bundle name (default: the model's).")
@click.option(
    "--opset",
    default=17,
    show_default=True,
    type=click.IntRange(11),
    help="ONNX opset (pinned so every board reads the same graph).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the resulting manifest as JSON to this file.",
)
@opt.model_file_options_no_labels
def export_command(
    model: str,
    out: Path,
    formats: str,
    precisions: str,
    calib: str | None,
    calib_count: int | None,
    val: str | None,
    address: str | None,
    max_drop: float,
    time_budget: float,
    scheme: str | None,
    threads: int,
    batch: str,
    imgsz: int | None,
    weights: Path | None,
    labels: str | None,
    name: str | None,
    opset: int,
    json_path: str | None,
) -> None:
    """Export MODEL (`sample`, `reference`, .pt2, TorchScript, .onnx, or module:factory).

    `sample` is the small shipped detector (320x320); `reference` the YOLOv8n-class one
    (3 M parameters, 640x640), for figures at the size users deploy.

    Every --to format is written at every --precision; with --val each artifact is evaluated
    against fp32 and the command exits 1 when one drops more than --max-drop.
    """
    import dataclasses

    from ..errors import require

    export_api = require(
        "edgekit.export", package="edgekit[export]", extra="export", purpose="exporting models"
    )
    with console.status("starting") as status:
        def progress(message: str) -> None:
            bad = "FAIL" in message or "drops" in message
            say("[bold red]✗[/] {}" if bad else "[green]✓[/] {}", message)
            status.update(f"after: {message}")

        try:
            bundle = export_api.export(
                model, out, formats=_split(formats), precisions=_split(precisions),
                calib=calib, val=val, max_drop=max_drop, scheme=scheme,
                calib_count=calib_count, threads=threads, imgsz=imgsz, weights=weights,
                batch=batch,
                labels=_split(labels) if labels else None, name=name, opset=opset,
                progress=progress, file_options=opt.file_options(), address=address,
                time_budget=time_budget or None,
            )
        except export_api.ExportIncomplete as incomplete:
            status.stop()
            results.print(results_table(incomplete.bundle))
            write_json(json_path, dataclasses.asdict(incomplete.bundle.manifest))
            raise
    results.print(results_table(bundle))
    _say_label_free(bundle)
    write_json(json_path, dataclasses.asdict(bundle.manifest))


def _say_label_free(bundle: Any) -> None:
    notes = {(a.accuracy or {}).get("note") for a in bundle.manifest.artifacts} - {None}
    for text in notes:
        say("[bold]{}[/]", text)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def results_table(bundle: Any) -> Any:
    """format x precision -> size, mAP@0.5:0.95, delta vs fp32, agreement, gate, latency."""
    rows = []
    for a in bundle.manifest.artifacts:
        acc = a.accuracy or {}
        size = a.size + sum((bundle.path / name).stat().st_size
                            for name in a.details.get("companions", {}))
        delta = acc.get("delta_map50_95")
        gate = acc.get("gate", "not measured")
        rows.append((
            a.format, a.precision, f"{size / 1e6:.2f} MB",
            points(acc.get("map50_95")),
            f"{delta:+.2f}" if delta is not None and gate != "reference" else None,
            f"{acc['agreement']:.3f}" if acc.get("agreement") is not None else None,
            Text(gate, style="red") if gate == "failed" else gate,
            acc.get("fallback"),
            f"{a.details['latency_ms_median']:.2f} ms"
            if a.details.get("latency_ms_median") is not None else None,
            # Raw outputs hold pixel boxes of every anchor, low-score ones included: a max
            # |diff| says something for fp32 (conversion parity), not for reduced precision.
            f"{a.details['golden_max_abs_diff']:.1e}"
            if a.details.get("golden_max_abs_diff") is not None
            and a.precision.value == "fp32" else None,
        ))
    return table(
        f"bundle {bundle.path}",
        ["format", "precision", "size", "mAP@0.5:0.95", "Δ vs fp32", "agreement", "gate",
         "fallback", "median latency", "fp32 parity max |Δ|"],
        rows,
    )
