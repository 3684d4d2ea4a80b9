"""What every runner shares: the request, the plan, artifact choice and the Runner wrapper.

A family module only decides (``plan``: which artifact, which backend, which options); opening
the model and reading back what really executes is common, so no family can report a device
it merely asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.backends import BackendOptions, format_runtimes
from edgekit.bundle import Artifact, Bundle, Format, Precision
from edgekit.errors import BundleError, MissingDependencyError, UnknownNameError
from edgekit.modelfile import cache_root

from ..detect import Facts
from ..profiles import BoardProfile

CACHE_ROOT = cache_root()


@dataclass(frozen=True, kw_only=True)
class Request:
    """What the caller asked for; None leaves the choice to the board profile."""

    format: Format | None = None
    precision: Precision | None = None
    threads: int | None = None
    fallback: bool = False


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A runner's decision, made before anything is loaded (so it is testable anywhere)."""

    artifact: Artifact
    backend: str
    options: BackendOptions
    requested: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    choice: Any = None  # edgekit.choice.Choice when the artifact was chosen by measurement


def input_shapes(bundle: Bundle, artifact: Artifact | None = None) -> dict[str, list[int]]:
    """The image input's shape at the artifact's batch (``export --batch N``; 1 for a
    dynamic batch): TensorRT builds its engine, and keys its cache, on it."""
    spec = bundle.manifest.input
    batch = (artifact.details.get("batch") if artifact is not None else None) or 1
    return {spec.name: [batch if isinstance(batch, int) else 1,
                        *(int(d) for d in spec.shape[1:])]}


def backend_for_format(fmt: Format, facts: Facts) -> str | None:
    """The backend that runs ``fmt`` here, or None when none of its runtimes is installed
    (the runtimes and their fallbacks as each backend declares them)."""
    for backend, runtime in format_runtimes(fmt):
        if facts.has_runtime(runtime.package):
            return backend
    return None


def local_threads(board: BoardProfile, request: Request, facts: Facts) -> int:
    """Requested threads, else the board's default capped at this machine's cores."""
    return request.threads or min(board.default_threads(), facts.cores)


def candidates(bundle: Bundle, board: BoardProfile, request: Request) -> list[Artifact]:
    """The bundle's artifacts this board runs, best first, filtered by the request.

    Raises:
        UnknownNameError: the board cannot run the requested format or precision at all.
        BundleError: the bundle has nothing the board runs.
    """
    pairs = list(board.prefer)
    runs = ", ".join(f"{f}/{p}" for f, p in pairs)
    if request.format and not any(f is request.format for f, _ in pairs):
        raise UnknownNameError(
            f"The board '{board.name}' cannot run the '{request.format}' format (it runs: {runs}).",
            hint="Drop --format, or pick a board that runs it (`edgekit devices` lists them).",
        )
    pairs = [
        (f, p) for f, p in pairs if request.format in (None, f) and request.precision in (None, p)
    ]
    if not pairs:
        raise UnknownNameError(
            f"The board '{board.name}' runs no {request.format or ''} artifact at "
            f"{request.precision} (it runs: {runs}).",
            hint="Drop --precision or change it.",
        )
    have = {(a.format, a.precision): a for a in bundle.manifest.artifacts}
    found = [have[pair] for pair in pairs if pair in have]
    if not found:
        wanted = ", ".join(f"{f}/{p}" for f, p in pairs)
        bundle_has = ", ".join(a.key for a in bundle.manifest.artifacts) or "nothing"
        raise BundleError(
            f"{bundle.path} has nothing the board '{board.name}' runs (it takes: {wanted}; "
            f"the bundle has: {bundle_has}).",
            hint="Export one of those: `edgekit export MODEL --to ... --precision ...`.",
        )
    return found


def measured_choice(bundle: Bundle, board: BoardProfile, request: Request,
                    facts: Facts) -> Any:
    """The default artifact chosen by what was measured (edgekit.choice), or None.

    Gate latencies were measured on the export host, so they stand for this machine only on a
    plain CPU board; other boards go by their own bench history, then the profile's order.
    """
    from edgekit.bench.history import default_path
    from edgekit.choice import choose

    found = candidates(bundle, board, request)
    return choose([(a, backend_for_format(a.format, facts)) for a in found], board=board.name,
                  history=default_path(), gate_latency=board.family == "cpu")


def first_runnable(
    bundle: Bundle, board: BoardProfile, request: Request, facts: Facts
) -> tuple[Artifact, str]:
    """The best artifact whose runtime is installed here, and the backend to run it on."""
    found = candidates(bundle, board, request)
    for artifact in found:
        backend = backend_for_format(artifact.format, facts)
        if backend is not None:
            return artifact, backend
    needs = sorted({r.package for a in found for _, r in format_runtimes(a.format)})
    raise MissingDependencyError(
        " or ".join(needs), purpose=f"running {', '.join(a.key for a in found)} on '{board.name}'"
    )


class Runner:
    """A Detector opened by a runner, with the plan that chose it.

    Call it like the Detector (``runner(image)``); ``executed_on`` is read back from the
    runtime, ``plan.requested`` is what was asked for.
    """

    def __init__(self, detector: Any, board: BoardProfile, plan: Plan) -> None:
        self.detector = detector
        self.board = board
        self.plan = plan

    def __call__(self, image: np.ndarray, **kwargs: Any) -> Any:
        return self.detector(image, **kwargs)

    @property
    def executed_on(self) -> str:
        return self.detector.backend.executed_on

    @property
    def artifact(self) -> Artifact:
        return self.detector.artifact

    @property
    def backend(self) -> Any:
        return self.detector.backend
