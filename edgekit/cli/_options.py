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
    """Opens MODEL's chosen artifact with the shared options.

    With --format/--precision, exactly that artifact. Without them, the best for this machine:
    the detected board's runner picks from its profile's preference order (on x86, OpenVINO
    INT8 first), never an artifact that failed the export's accuracy gate.
    """
    from ..backends import BackendOptions
    from ..detector import Detector

    if format_ is None and precision is None:
        best = _best_for_this_machine(model, threads_)
        if best is not None:
            return best
    return Detector.open(
        model, format=format_, precision=precision, options=BackendOptions(threads=threads_)
    )


def _best_for_this_machine(model: str, threads_: int | None):
    """The board runner's Detector, or None where no board profile fits (then the bundle's
    default artifact runs, as before board detection existed)."""
    from dataclasses import replace

    from ..errors import BundleError, UnknownNameError

    try:
        from edgekit.devices.runners import load_runner, open_model
    except ImportError:  # a core-only install without the devices part
        return None
    bundle = open_model(model)
    passing = [a for a in bundle.manifest.artifacts
               if (a.accuracy or {}).get("gate") != "failed"]
    if not passing:
        return None  # all failed: Detector.open picks the default and the user sees it
    bundle = bundle.with_manifest(replace(bundle.manifest, artifacts=passing))
    try:
        return load_runner(bundle, threads=threads_).detector
    except (UnknownNameError, BundleError):  # no profile for this machine, or nothing it runs
        return None
