"""`edgekit eval`: mAP of a model or bundle on a COCO or YOLO dataset."""

from __future__ import annotations

import click
from rich.text import Text

from . import _options as opt
from ._ui import points, progress_bar, results, table, write_json


@click.command("eval")
@click.argument("model")
@click.option(
    "--data",
    "data",
    required=True,
    help="COCO JSON (or a folder holding annotations.json) or a YOLO folder.",
)
@click.option(
    "--conf",
    default=0.001,
    show_default=True,
    type=float,
    help="Score threshold (COCO mAP wants a low one).",
)
@click.option("--iou", default=0.6, show_default=True, type=float, help="NMS IoU threshold.")
@opt.artifact_format
@opt.artifact_precision
@opt.threads
@opt.ray_address
@opt.ray_workers
@opt.explain
@opt.json_file
@opt.model_file_options
def eval_command(
    model: str,
    data: str,
    conf: float,
    iou: float,
    format_: str | None,
    precision: str | None,
    threads: int | None,
    address: str | None,
    workers: int | None,
    explain: bool,
    json_path: str | None,
) -> None:
    """Evaluate MODEL (a bundle, a .onnx, or `sample`) on a dataset: mAP@0.5 and @0.5:0.95.

    With --address (or --workers), the images are sharded over Ray workers (edgekit[scale]);
    the numbers are the same as in one process.
    """
    if address is not None or workers is not None:
        from ..batch import evaluate_sharded

        with progress_bar() as bar:
            task = bar.add_task("evaluating on Ray workers", total=None)
            result, ran = evaluate_sharded(
                model, data, address=address, workers=workers, format=format_,
                precision=precision, conf=conf, iou=iou, file_options=opt.file_options(),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        _report(model, data, result, ran["artifact"], ran["executed_on"], json_path)
        return
    from ..data.dataset import check_labels, load_dataset
    from ..eval import evaluate

    detector = opt.open_detector(model, format_, precision, threads, explain=explain)
    dataset = load_dataset(data)
    check_labels(dataset.labels, detector.labels)
    with progress_bar() as bar:
        task = bar.add_task(f"evaluating {detector.artifact.key}", total=len(dataset.items))
        result = evaluate(
            lambda image: detector(image, conf=conf, iou=iou),
            dataset,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    _report(model, data, result, detector.artifact.key, detector.backend.executed_on, json_path)


def _report(model: str, data: str, result, artifact: str, executed_on: str,
            json_path: str | None) -> None:
    rows = [(name, v["instances"], points(v["ap50"]), points(v["ap50_95"]))
            for name, v in result.per_class.items()]
    rows.append(
        (
            Text("all", style="bold"),
            sum(v["instances"] for v in result.per_class.values()),
            points(result.map50),
            points(result.map50_95),
        )
    )
    results.print(
        table(
            f"{model} ({artifact} on {executed_on}) "
            f"on {data} ({result.images} images)",
            ["class", "instances", "mAP@0.5 (pts)", "mAP@0.5:0.95 (pts)"],
            rows,
        )
    )
    write_json(
        json_path,
        {
            **result.to_dict(),
            "model": str(model),
            "artifact": artifact,
            "executed_on": executed_on,
            "data": str(data),
        },
    )
