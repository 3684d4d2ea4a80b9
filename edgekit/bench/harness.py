"""The benchmark loop: load, first inference, warm-up, then timed runs with peak RSS.

Works on any model file (inputs built from the model's own shapes and dtypes) and on a
runner's Detector (pre/inference/post timed per stage). Only ``time.perf_counter_ns`` around
the call is measured, the same thing a plain runtime loop measures: the honesty check in
benchmarks/bench_honesty.py compares the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import (
    BACKENDS,
    Backend,
    BackendOptions,
    TensorInfo,
    format_of,
    install_hint,
    readers,
)
from ..bundle import utc_now
from ..errors import EdgekitError, ModelError
from .fingerprint import fingerprint
from .memory import PeakRss
from .result import BenchResult
from .stats import fps, summarize

_RUNTIME_PRECISIONS = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8"}


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """How long and on what to measure.

    Attributes:
        runs: Timed runs (ignored when ``duration_s`` is set).
        duration_s: Run for this many seconds instead of a fixed count.
        warmup: Untimed runs after the first inference.
        shapes: Input name -> shape for dynamic inputs (other dynamic dims become 1).
        seed: Seed of the random inputs.
    """

    runs: int = 100
    duration_s: float | None = None
    warmup: int = 10
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    seed: int = 0

    def check(self) -> None:
        if self.duration_s is None and self.runs < 1:
            raise EdgekitError(f"--runs must be at least 1 (got {self.runs}).",
                               hint="Use e.g. --runs 100, or --duration 10 for seconds.")
        if self.duration_s is not None and self.duration_s <= 0:
            raise EdgekitError(f"--duration must be positive (got {self.duration_s}).")
        if self.warmup < 0:
            raise EdgekitError(f"--warmup cannot be negative (got {self.warmup}).")


def timed_loop(call: Callable[[], Any], settings: BenchSettings,
               after: Callable[[], None] | None = None) -> list[float]:
    """Runs ``call`` per the settings; returns each run's milliseconds."""
    samples: list[float] = []
    deadline = (time.perf_counter() + settings.duration_s) if settings.duration_s else None
    while True:
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        if after is not None:
            after()
        if deadline is not None:
            if time.perf_counter() >= deadline:
                return samples
        elif len(samples) >= settings.runs:
            return samples


def random_inputs(infos: Sequence[TensorInfo], shapes: Mapping[str, Sequence[int]],
                  *, seed: int = 0) -> list[np.ndarray]:
    """Random tensors from the model's own shapes and dtypes.

    A dynamic batch (first) dim becomes 1 (recorded in the result's inputs); any other dynamic
    dim must be given in ``shapes``, else this refuses; ints get small random ints
    (valid as indices into most embeddings), floats uniform [0, 1), bools random.
    """
    rng = np.random.default_rng(seed)
    unknown = set(shapes) - {i.name for i in infos}
    if unknown:
        raise EdgekitError(
            f"--shape names inputs the model does not have: {', '.join(sorted(unknown))}.",
            hint=f"Its inputs: {', '.join(i.name for i in infos)}.")
    arrays = []
    for info in infos:
        given = shapes.get(info.name)
        if given is None:
            unsized = [i for i, d in enumerate(info.shape) if not isinstance(d, int) and i > 0]
            if unsized:
                # Filling these with 1 "benchmarked" a text detector at 1x3x1x1 (379 fps).
                example = "x".join(str(d) if isinstance(d, int) else "N" for d in info.shape)
                raise EdgekitError(
                    f"The input '{info.name}' has dynamic dimensions {list(info.shape)}; "
                    "a benchmark at a made-up size measures nothing.",
                    hint=f"Give its size: --shape {info.name}={example} (N: your size).")
        shape = tuple(given or (d if isinstance(d, int) else 1 for d in info.shape))
        if len(shape) != len(info.shape) or any(
                isinstance(d, int) and d != s for d, s in zip(info.shape, shape, strict=False)):
            raise EdgekitError(
                f"--shape {info.name}={'x'.join(map(str, shape))} does not fit the input's "
                f"shape {list(info.shape)} (None marks a dynamic dim).")
        if info.dtype.kind in "iu":
            arrays.append(rng.integers(0, 10, size=shape).astype(info.dtype))
        elif info.dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.random(shape, dtype=np.float32).astype(info.dtype))
    return arrays


def load_model_file(path: Path, *, backend: str | None = None,
                    options: BackendOptions | None = None) -> Backend:
    """Loads a plain model file on ``backend``, else on the first runtime that can.

    When the preferred backend fails, the other runtimes that read the format are tried with
    plain options (threads only); the error lists every runtime's reason.

    Raises:
        ModelError: the file is missing, or no installed runtime can load it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file.",
                         hint="Give a .onnx, .tflite or OpenVINO .xml file, or a bundle dir.")
    options = options or BackendOptions()
    names = readers(format_of(path))  # OpenVINO reads ONNX as well; all for an odd suffix
    attempts = [(backend, options)] if backend else []
    attempts += [(n, options if not backend else BackendOptions(threads=options.threads))
                 for n in names if n != backend]
    failures = []
    for name, opts in attempts:
        try:
            return BACKENDS.load(name)(path, options=opts)
        except EdgekitError as exc:
            failures.append(f"{name}: {exc.message}")
    raise ModelError(
        f"None of the installed runtimes can load {path}: " + "; ".join(failures),
        hint="Check the file is complete, or install the runtime for its format "
             f"({install_hint()}).")


def ran_precision(backend: Backend, stored: str | None) -> tuple[str, str | None]:
    """(precision that ran, the runtime's own precision setting) for the fingerprint."""
    runtime = getattr(backend, "inference_precision", None)
    quantized = any(q is not None for q in getattr(backend, "input_quantization", []) or []) \
        or any(q is not None for q in getattr(backend, "output_quantization", []) or [])
    if stored in (None, "fp32") and runtime in _RUNTIME_PRECISIONS and runtime != "f32":
        return _RUNTIME_PRECISIONS[runtime], runtime  # e.g. OpenVINO running fp32 in bf16
    if stored:
        return stored, runtime
    if quantized:
        return "int8", runtime
    return (_RUNTIME_PRECISIONS.get(runtime or "f32", "fp32")
            if backend.name == "openvino" else "as stored"), runtime


@dataclass(frozen=True, kw_only=True)
class Context:
    """Who is measuring where: the fingerprint's board facts."""

    board: str
    detected_board: str | None
    cpu_model: str


def bench_file(path: str | Path, *, settings: BenchSettings, context: Context,
               backend: str | None = None, options: BackendOptions | None = None,
               precision: str | None = None, label: str | None = None,
               requested: str | None = None) -> BenchResult:
    """Benchmarks any model file on random inputs built from its own inputs."""
    settings.check()
    options = options or BackendOptions()
    with PeakRss() as mem:
        t0 = time.perf_counter_ns()
        loaded = load_model_file(Path(path), backend=backend, options=options)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        inputs = random_inputs(loaded.inputs, settings.shapes, seed=settings.seed)
        first_ms = timed_loop(lambda: loaded.run(inputs), BenchSettings(runs=1))[0]
        for _ in range(settings.warmup):
            loaded.run(inputs)
        samples = timed_loop(lambda: loaded.run(inputs), settings)
    stats = summarize(samples)
    ran, runtime = ran_precision(loaded, precision)
    return BenchResult(
        model=str(path), artifact=label or Path(path).name, format=_format_of(loaded),
        backend=loaded.name, precision=ran, executed_on=loaded.executed_on,
        threads=options.threads, runs=len(samples), warmup=settings.warmup, load_ms=load_ms,
        first_inference_ms=first_ms, latency_ms=stats, fps=fps(stats), peak_rss_mb=mem.peak_mb,
        inputs={i.name: {"shape": list(a.shape), "dtype": str(a.dtype)}
                for i, a in zip(loaded.inputs, inputs, strict=True)},
        fingerprint=fingerprint(board=context.board, detected_board=context.detected_board,
                                cpu_model=context.cpu_model, threads=options.threads,
                                versions=loaded.versions(), precision=ran,
                                executed_on=loaded.executed_on, runtime_precision=runtime),
        timestamp=utc_now(), requested=requested or options.device)


def bench_runner(open_runner: Callable[[], Any], *, settings: BenchSettings, context: Context,
                 model: str, image: np.ndarray | None = None) -> BenchResult:
    """Benchmarks a runner's Detector on one image: per stage and end to end.

    Args:
        open_runner: Opens the runner (timed as the load).
        image: The BGR frame (default: seeded noise, 640x480).
    """
    settings.check()
    frame = image if image is not None else np.random.default_rng(settings.seed).integers(
        0, 256, (480, 640, 3), dtype=np.uint8)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}

    def record() -> None:
        times = runner.detector.times
        for name, values in stages.items():
            values.append(getattr(times, name))

    with PeakRss() as mem:
        t0 = time.perf_counter_ns()
        runner = open_runner()
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        runner(frame)
        first_ms = runner.detector.times.inference
        for _ in range(settings.warmup):
            runner(frame)
        e2e = timed_loop(lambda: runner(frame), settings, after=record)
    backend = runner.backend
    latency = summarize(stages["inference"])
    ran, runtime = ran_precision(backend, str(runner.artifact.precision))
    return BenchResult(
        model=model, artifact=runner.artifact.key, format=str(runner.artifact.format),
        backend=backend.name, precision=ran, executed_on=runner.executed_on,
        threads=runner.plan.options.threads, runs=len(e2e), warmup=settings.warmup,
        load_ms=load_ms, first_inference_ms=first_ms, latency_ms=latency, fps=fps(latency),
        peak_rss_mb=mem.peak_mb,
        inputs={i.name: {"shape": list(i.shape), "dtype": str(i.dtype)} for i in backend.inputs},
        stages_ms={name: summarize(values) for name, values in stages.items()},
        end_to_end_ms=summarize(e2e),
        fingerprint=fingerprint(board=context.board, detected_board=context.detected_board,
                                cpu_model=context.cpu_model, threads=runner.plan.options.threads,
                                versions=backend.versions(), precision=ran,
                                executed_on=runner.executed_on, runtime_precision=runtime),
        timestamp=utc_now(), requested=runner.plan.requested, notes=list(runner.plan.notes),
        sha256=runner.artifact.sha256 or None)


def _format_of(backend: Backend) -> str:
    fmt = format_of(backend.path)
    return str(fmt) if fmt else backend.name
