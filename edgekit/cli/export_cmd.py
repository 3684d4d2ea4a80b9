"""`edgekit export`: a PyTorch or ONNX model in, a verified bundle out."""

from __future__ import annotations

from pathlib import Path

import click

from ._ui import console, table, write_json


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
    "--to", "formats", default="onnx", show_default=True, help="Comma-separated formats to export."
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
def export_command(
    model: str,
    out: Path,
    formats: str,
    imgsz: int | None,
    weights: Path | None,
    labels: str | None,
    name: str | None,
    opset: int,
    json_path: str | None,
) -> None:
    """Export MODEL (`sample`, .pt2, TorchScript, .onnx, or module:factory) to a bundle."""
    import dataclasses

    from ..bundle import Format
    from ..errors import require

    export_api = require(
        "edgekit.export", package="edgekit[export]", extra="export", purpose="exporting models"
    )
    chosen = tuple(Format.parse(f.strip()) for f in formats.split(",") if f.strip())
    bundle = export_api.export(
        model,
        out,
        formats=chosen,
        imgsz=imgsz,
        weights=weights,
        labels=[s.strip() for s in labels.split(",")] if labels else None,
        name=name,
        opset=opset,
        progress=lambda msg: console.print(f"[green]✓[/] {msg}"),
    )
    m = bundle.manifest
    console.print(
        table(
            f"bundle {bundle.path}",
            ["format", "precision", "file", "size", "parity max |Δ|"],
            [
                (
                    a.format,
                    a.precision,
                    a.file,
                    f"{a.size / 1e6:.2f} MB",
                    a.details.get("parity_max_abs_diff", m.provenance.parity.get("max_abs_diff")),
                )
                for a in m.artifacts
            ],
        )
    )
    write_json(json_path, dataclasses.asdict(m))
