"""Options several commands share, defined once."""

from __future__ import annotations

import click

from ..bundle import Format, Precision

artifact_format = click.option(
    "--format",
    "format_",
    type=click.Choice([f.value for f in Format]),
    default=None,
    help="Which artifact of the bundle to run (default: the best for this machine).",
)
artifact_precision = click.option(
    "--precision",
    type=click.Choice([p.value for p in Precision]),
    default=None,
    help="Which precision of the bundle to run.",
)
threads = click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="Inference threads (default: the runtime's choice).",
)
json_file = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the results as JSON to this file.",
)


def open_detector(model: str, format_: str | None, precision: str | None, threads_: int | None):
    """Opens MODEL's chosen artifact with the shared options."""
    from ..backends import BackendOptions
    from ..detector import Detector

    return Detector.open(
        model, format=format_, precision=precision, options=BackendOptions(threads=threads_)
    )
