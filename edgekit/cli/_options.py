"""Options several commands share, defined once."""

from __future__ import annotations

from typing import Any

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
explain = click.option(
    "--explain",
    is_flag=True,
    help="Show every artifact the default choice considered, with its gate, mAP and latency.",
)
json_file = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the results as JSON to this file.",
)


def _store(ctx: click.Context, param: click.Parameter, value):
    if value is not None:
        ctx.meta.setdefault("edgekit.file_options", {})[param.name] = value
    return value


def _triple(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise click.BadParameter("give one number or three, comma-separated (e.g. 127.5).")
    return _store(ctx, param, parts)


def _size(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        parts = tuple(int(v) for v in value.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise click.BadParameter("give HEIGHTxWIDTH, e.g. 640x640.")
    return _store(ctx, param, parts)


def _names(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise click.BadParameter("give comma-separated class names.")
    return _store(ctx, param, names)


_LABELS = click.option(
    "--labels", expose_value=False, callback=_names, default=None, metavar="A,B,..",
    help="Class names of a plain model file whose metadata has none.")

_FILE_OPTIONS = (
    click.option("--head", expose_value=False, callback=_store, default=None,
                 help="Output convention of a plain model file (default: recognised from its "
                 "outputs): yolov8, yolov5, end2end, yolox, yolox-decoded, detr, ssd, "
                 "blazeface, scrfd."),
    click.option("--shape", "shape", expose_value=False, callback=_size, default=None,
                 metavar="HxW", help="Input size of a model file whose size is dynamic."),
    click.option("--mean", expose_value=False, callback=_triple, default=None,
                 metavar="M[,M,M]", help="Per-channel mean subtracted from 0..255 pixels."),
    click.option("--std", expose_value=False, callback=_triple, default=None,
                 metavar="S[,S,S]", help="Per-channel divisor after the mean (255: 0..1)."),
    click.option("--color", expose_value=False, callback=_store, default=None,
                 type=click.Choice(["rgb", "bgr"]), help="Channel order the model takes."),
    click.option("--resize", expose_value=False, callback=_store, default=None,
                 type=click.Choice(["letterbox", "stretch"]),
                 help="Keep the aspect (letterbox) or stretch to the input size."),
)


def model_file_options(command, *, labels: bool = True):
    """--head/--shape/--mean/--std/--color/--resize/--labels: what a plain model file does
    not say. Every command that opens a model takes them, so all accept the same files.
    """
    for option in reversed(_FILE_OPTIONS + ((_LABELS,) if labels else ())):
        command = option(command)
    return command


def file_options(labels: list[str] | None = None):
    """The FileOptions the current command's flags gave (None when none were given)."""
    from ..modelfile import FileOptions

    given = dict(click.get_current_context().meta.get("edgekit.file_options", {}))
    if labels:
        given["labels"] = tuple(labels)
    return FileOptions(**given) if given else None


def say_head(manifest) -> None:
    """Prints which head decodes the model and why (never a silent choice)."""
    from ._ui import say

    out = manifest.output
    why = out.reason or "from the bundle's manifest"
    keypoints = f", {out.keypoints} keypoints" if out.keypoints else ""
    say("head: [bold]{}[/]{} ({})", out.kind, keypoints, why)
    if manifest.input.origin:
        say("preprocessing: {}", manifest.input.origin)


def open_detector(model: str, format_: str | None, precision: str | None, threads_: int | None,
                  *, explain: bool = False):
    """Opens MODEL's chosen artifact with the shared options.

    With --format/--precision, exactly that artifact. Without them, the best for this machine:
    the fastest measured artifact that passed its accuracy gate on a runtime installed here
    (edgekit.choice; the board profile's order only breaks ties), said in one line.
    """
    from ..backends import BackendOptions
    from ..detector import Detector

    options = file_options()
    detector = None
    if format_ is None and precision is None:
        runner = _best_for_this_machine(model, threads_, options)
        if runner is not None:
            show_choice(runner.plan, explain=explain)
            detector = runner.detector
    if detector is None:
        detector = Detector.open(model, format=format_, precision=precision,
                                 options=BackendOptions(threads=threads_), file_options=options)
    say_head(detector.manifest)
    return detector


def show_choice(plan: Any, *, explain: bool) -> None:
    """One line saying which artifact runs and why; with ``explain`` every candidate's figures."""
    from ._ui import results, say, table

    choice = getattr(plan, "choice", None)
    if choice is None:
        return
    say("[dim]artifact:[/] {}", choice.explain)
    if explain:
        results.print(table("artifacts considered (board profile order)",
                            ["artifact", "runtime", "gate", "mAP@0.5:0.95 (pts)", "latency ms",
                             "latency from", "verdict"], choice.rows()))


def _best_for_this_machine(model: str, threads_: int | None, options=None):
    """The board runner, or None where no board profile fits (then the bundle's default
    artifact runs, as before board detection existed)."""
    from ..errors import BundleError, UnknownNameError

    try:
        from edgekit.devices.runners import load_runner, open_model
    except ImportError:  # a core-only install without the devices part
        return None
    bundle = open_model(model, file_options=options)
    if all((a.accuracy or {}).get("gate") == "failed" for a in bundle.manifest.artifacts):
        return None  # all failed: Detector.open picks the default and the user sees it
    try:
        return load_runner(bundle, threads=threads_)
    except (UnknownNameError, BundleError):  # no profile for this machine, or nothing it runs
        return None


ray_address = click.option(
    "--address",
    default=None,
    help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: start Ray here).",
)
ray_workers = click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Ray workers (actors) to start (default: one per CPU of the cluster).",
)


def model_file_options_no_labels(command):
    """The model-file options for a command that has its own --labels (export)."""
    return model_file_options(command, labels=False)
