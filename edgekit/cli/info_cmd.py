"""`edgekit info`: a bundle's manifest as tables."""

from __future__ import annotations

import click

from . import _options as opt
from ._ui import points, results, table, write_json


@click.command("info")
@click.argument("bundle", required=False)
@click.option("--heads", "list_heads", is_flag=True,
              help="List the output conventions (heads) edgekit decodes, and exit.")
@opt.model_file_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the manifest as JSON to this file.",
)
def info(bundle: str | None, list_heads: bool, json_path: str | None) -> None:
    """Show BUNDLE's manifest (verifying every file's sha256), or a model file's as edgekit
    reads it (head recognised, preprocessing)."""
    import dataclasses

    from ..detector import open_bundle

    if list_heads or bundle is None:
        _print_heads()
        return
    loaded = open_bundle(bundle, file_options=opt.file_options())
    m = loaded.manifest
    opt.say_head(m)
    spec = m.input
    results.print(
        table(
            f"{m.name} ({loaded.path})",
            ["field", "value"],
            [
                ("task", m.task),
                ("schema", m.schema_version),
                ("labels", ", ".join(m.labels)),
                (
                    "input",
                    f"{spec.name} {list(spec.shape)} {spec.layout} {spec.dtype} {spec.color}",
                ),
                (
                    "preprocess",
                    f"letterbox={spec.letterbox} pad={spec.pad_value} mean={list(spec.mean)} "
                    f"std={list(spec.std)}",
                ),
                (
                    "output",
                    f"{m.output.kind} '{m.output.name}' conf={m.output.conf_threshold} "
                    f"iou={m.output.iou_threshold} keypoints={m.output.keypoints}",
                ),
                ("source", m.provenance.source),
                ("source sha256", m.provenance.source_sha256[:16]),
                ("created", m.provenance.created),
                ("tools", ", ".join(f"{k} {v}" for k, v in m.provenance.tools.items())),
                (
                    "parity",
                    ", ".join(
                        f"{k}={v}"
                        for k, v in m.provenance.parity.items()
                        if not isinstance(v, dict)
                    ),
                ),
            ],
        )
    )
    results.print(
        table(
            "artifacts (sha256 verified)",
            ["format", "precision", "file", "size", "sha256", "mAP@0.5:0.95 (pts)", "gate"],
            [
                (
                    a.format,
                    a.precision,
                    a.file,
                    f"{a.size / 1e6:.2f} MB",
                    a.sha256[:16],
                    points((a.accuracy or {}).get("map50_95")),
                    (a.accuracy or {}).get("gate"),
                )
                for a in m.artifacts
            ],
        )
    )
    write_json(json_path, dataclasses.asdict(m))


def _print_heads() -> None:
    from ..heads import HEADS

    results.print(table("heads (output conventions)", ["head", "outputs"],
                        [(name, HEADS.load(name).summary) for name in HEADS]))
