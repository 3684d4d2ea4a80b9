"""``bench``: one entry point for a bundle, a plain model file, or every artifact of a bundle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..backends import format_of
from ..bundle import Artifact, Bundle, Format, Manifest, Precision
from ..errors import EdgekitError
from .harness import BenchSettings, Context, bench_file, bench_runner
from .result import BenchResult


def _devices() -> Any:
    # edgekit.devices is the devices/ folder, installed beside the core: imported lazily so
    # the core never needs it at module level.
    import edgekit.devices.detect as detect
    import edgekit.devices.runners as runners

    return detect, runners


def context_for(board: str | None, *, facts: Any = None) -> tuple[Any, Any, Context]:
    """(profile, facts, fingerprint context) for a board name or this machine."""
    detect, runners = _devices()
    facts = facts or detect.gather_facts()
    try:
        detected = detect.detect_board(facts).profile.name
    except EdgekitError:
        detected = None
    profile = runners.resolve_board(board, facts)
    return profile, facts, Context(board=profile.name, detected_board=detected,
                                   cpu_model=facts.cpu_model)


def is_plain_file(model: str | Path) -> bool:
    """A file benchmarked as it is, on random inputs (an Ultralytics checkpoint is not: it
    is opened as a detector, through the model-file loader's ONNX conversion)."""
    from ..modelfile import is_ultralytics_checkpoint

    path = Path(model)
    return str(model) != "sample" and not path.is_dir() and not is_ultralytics_checkpoint(path)


def bench(model: str | Path, *, settings: BenchSettings, board: str | None = None,
          format: str | None = None, precision: str | None = None, threads: int | None = None,
          fallback: bool = False, val: Any = None, facts: Any = None) -> BenchResult:
    """Benchmarks a bundle's chosen artifact (as a detector) or any plain model file.

    Args:
        model: ``sample``, a bundle directory, or a .onnx/.tflite/.xml file of any inputs.
        settings: Runs/duration, warm-up, input shapes, seed.
        board: Board profile name (default: this machine's).
        format: Artifact format to run (bundles) or check against the board (files).
        precision: Artifact precision (bundles); the file's precision (files, for the record).
        threads: Inference threads (default: the board's, capped at this machine's cores).
        fallback: Allow a missing accelerator to fall back (logged, shown in executed_on).
        val: A loaded Dataset to measure mAP on (detectors only).
    """
    settings.check()
    _, runners = _devices()
    profile, facts, ctx = context_for(board, facts=facts)
    request = runners.Request(format=Format.parse(format) if format else None,
                              precision=Precision.parse(precision) if precision else None,
                              threads=threads, fallback=fallback)
    if is_plain_file(model) and val is None:
        return _bench_plain(Path(model), profile, request, facts, ctx, settings)
    bundle = runners.open_model(model)
    plan = runners.make_plan(bundle, profile, request, facts)
    return _bench_plan(str(model), bundle, profile, plan, ctx, settings, val)


def _bench_plain(path: Path, profile: Any, request: Any, facts: Any, ctx: Context,
                 settings: BenchSettings) -> BenchResult:
    _, runners = _devices()
    fmt = format_of(path)
    if fmt is None or not path.is_file():
        # No plan to make: let the loader try every runtime and say why each failed.
        return bench_file(path, settings=settings, context=ctx,
                          options=_plain_options(request, profile, facts))
    if request.format and request.format is not fmt:
        raise EdgekitError(f"{path} is a {fmt} file, not {request.format}.",
                           hint="Drop --format for plain model files.")
    # The file becomes a one-artifact bundle so the board's runner plans for it exactly as
    # for a bundle (providers, devices, threads); the file is not hashed for that.
    stand_in = Bundle(path.parent, Manifest(name=path.stem, labels=["object"], artifacts=[
        Artifact(format=fmt, precision=request.precision or Precision.FP32, file=path.name,
                 sha256="", size=0)]))
    plan = runners.make_plan(stand_in, profile, replace(request, format=fmt), facts)
    return bench_file(path, settings=settings, context=ctx, backend=plan.backend,
                      options=plan.options, requested=plan.requested,
                      precision=str(request.precision) if request.precision else None)


def _plain_options(request: Any, profile: Any, facts: Any) -> Any:
    from ..backends import BackendOptions

    _, runners = _devices()
    return BackendOptions(threads=runners.base.local_threads(profile, request, facts))


def _bench_plan(model: str, bundle: Bundle, profile: Any, plan: Any, ctx: Context,
                settings: BenchSettings, val: Any) -> BenchResult:
    from ..detector import Detector

    _, runners = _devices()

    holder: dict[str, Any] = {}

    def opened() -> Any:
        detector = Detector(bundle, plan.artifact, options=plan.options, backend=plan.backend)
        holder["runner"] = runners.Runner(detector, profile, plan)
        return holder["runner"]

    result = bench_runner(opened, settings=settings, context=ctx, model=model)
    if val is not None:
        result.accuracy = _accuracy(holder["runner"], val)
    elif (plan.artifact.accuracy or {}).get("map50_95") is not None:
        # The accuracy the export gate measured for this very file (its sha256 was verified
        # on load), so a matrix plots latency against accuracy without a second evaluation.
        measured = plan.artifact.accuracy
        result.accuracy = {key: measured.get(key) for key in ("map50", "map50_95", "images")}
        result.accuracy["source"] = "export gate"
    return result


def _accuracy(runner: Any, dataset: Any) -> dict[str, Any]:
    from ..data.dataset import check_labels
    from ..eval import evaluate

    check_labels(dataset.labels, runner.detector.labels)
    # COCO mAP wants a low score threshold, as `edgekit eval` uses.
    result = evaluate(lambda image: runner(image, conf=0.001, iou=0.6), dataset)
    out = result.to_dict()
    out.pop("per_class", None)
    return out


def bench_matrix(model: str | Path, *, settings: BenchSettings, board: str | None = None,
                 threads: int | None = None, fallback: bool = False, val: Any = None,
                 facts: Any = None,
                 progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Benchmarks every artifact of a bundle the board can run, one result per artifact.

    Artifacts whose format the board does not run, or whose runtime is missing, are skipped
    and reported through ``progress``.
    """
    settings.check()
    _, runners = _devices()
    profile, facts, ctx = context_for(board, facts=facts)
    bundle = runners.open_model(model)
    results = []
    for artifact in bundle.manifest.artifacts:
        request = runners.Request(format=artifact.format, precision=artifact.precision,
                                  threads=threads, fallback=fallback)
        try:
            plan = runners.make_plan(bundle, profile, request, facts)
        except EdgekitError as exc:
            if progress:
                progress(f"skipped {artifact.key}: {exc.message}")
            continue
        if progress:
            progress(f"benchmarking {artifact.key} on {plan.backend}")
        results.append(_bench_plan(str(model), bundle, profile, plan, ctx, settings, val))
    if not results:
        raise EdgekitError(f"The board '{profile.name}' can run none of {bundle.path}'s "
                           "artifacts.", hint="Pick another --board (`edgekit devices`).")
    return results
