"""The one interface every runtime backend implements."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..bundle import Format, Precision
from ..errors import MissingDependencyError, install_command


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """Name, shape (None or a name for dynamic dims) and numpy dtype of one model tensor."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a backend can run: checked before loading, so a bad pairing fails early."""

    formats: frozenset[Format]
    precisions: frozenset[Precision] = frozenset(Precision)
    dynamic_shapes: bool = True
    devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """One library a backend can run on: how to import it and how to install it.

    A backend lists several, best first; the later ones are fallbacks (``tflite_runtime``
    for boards where ``ai_edge_litert`` has no wheel, ``onnxruntime-gpu`` on Jetsons).

    Attributes:
        module: What to import (``ai_edge_litert.interpreter``).
        package: The pip package that provides it (``ai-edge-litert``).
        extra: The edgekit extra that installs it, where one does (``litert``).
    """

    module: str
    package: str
    extra: str | None = None

    @property
    def top_module(self) -> str:
        """The top-level package, which can be looked for without importing anything."""
        return self.module.partition(".")[0]

    @property
    def install(self) -> str:
        """The command that installs it."""
        return install_command(self.package, self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendOptions:
    """Settings common to all backends.

    Attributes:
        threads: Intra-op threads; None lets the runtime decide.
        device: The device asked for ("cpu", "cuda", "npu", "gpu", "auto"...). What really runs
            is reported by ``Backend.executed_on``, never assumed from this.
        extra: Backend-specific settings (documented by each backend).
    """

    threads: int | None = None
    device: str = "cpu"
    extra: dict[str, object] = field(default_factory=dict)


class Backend(ABC):
    """A loaded model on one runtime.

    Subclasses load in ``__init__`` and raise ``ModelError`` for files they cannot read.
    """

    # The facts every other part reads (through edgekit.backends), declared here only.
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    format: ClassVar[Format]  # the artifact format this backend is the default runtime of
    suffixes: ClassVar[tuple[str, ...]]  # that format's file suffixes, lower case
    runtimes: ClassVar[tuple[Runtime, ...]]  # best first; the rest are fallbacks

    def __init__(self, path: Path, *, options: BackendOptions) -> None:
        self.path = Path(path)
        self.options = options

    @classmethod
    def import_runtime(cls, *, purpose: str) -> tuple[Any, Runtime]:
        """Imports the first of ``runtimes`` that is installed.

        Raises:
            MissingDependencyError: none is, naming the first (preferred) one's extra.
        """
        for runtime in cls.runtimes:
            try:
                return importlib.import_module(runtime.module), runtime
            except ImportError:
                continue
        first = cls.runtimes[0]
        raise MissingDependencyError(first.package, extra=first.extra, purpose=purpose)

    # Subclasses fill these while loading, from what the runtime reports about the model.
    _inputs: list[TensorInfo]
    _outputs: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs, in order."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, in order, as one image's results: where the image input has
        a batch (dynamic, or fixed at N by ``export --batch``), an output of rank 3 or more
        that leads with that batch reads 1 there (the heads decode one image; ``run`` takes
        and returns any number)."""
        batch = self._input_batch()
        if batch == 1:
            return self._outputs
        return [TensorInfo(o.name, (1, *o.shape[1:]), o.dtype)
                if len(o.shape) >= 3 and (o.shape[0] == batch or not isinstance(o.shape[0], int))
                else o for o in self._outputs]

    def _input_batch(self) -> int | None:
        image = next((i for i in self._inputs if len(i.shape) == 4), None)
        first = image.shape[0] if image is not None else 1
        return first if isinstance(first, int) and first > 0 else None

    @property
    @abstractmethod
    def executed_on(self) -> str:
        """The device/provider that REALLY executes, read back from the runtime."""

    @property
    def batch(self) -> int | None:
        """The image input's fixed batch size (``export --batch N``), None when dynamic."""
        return self._input_batch()

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Runs inference on the images stacked in ``inputs`` (model order); outputs likewise.

        A model whose batch is fixed at N takes any number of images: fewer run padded with
        zeros to N and the padding's results are dropped, more run in chunks of N. So a batch-4
        artifact answers a single image (the gate, predict, eval) and a partial batch (a camera
        that is late or dead) without the caller knowing N.
        """
        plan = self._batch_plan
        if plan is None:
            plan = self._batch_plan = _BatchPlan.of(self)
        if plan.fixed is None or len(inputs) <= plan.image:
            return self._run(inputs)
        count = len(inputs[plan.image])
        if count == plan.fixed:
            return self._run(inputs)
        return plan.run(self._run, inputs, count)

    _batch_plan: _BatchPlan | None = None

    @abstractmethod
    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Runs one inference at the model's own batch; inputs and outputs in model order."""

    def beside_other_work(self) -> Backend:
        """This model as a pipeline should run it: beside its own threads (decoding,
        pre/post-processing, sinks) on the same cores. The default is this backend itself."""
        return self

    def metadata(self) -> dict[str, str]:
        """Key/value metadata stored in the model file (Ultralytics writes names, imgsz,
        stride, task...); empty where the format or runtime has none."""
        return {}

    def versions(self) -> dict[str, str]:
        """Runtime library versions, for provenance and benchmark fingerprints."""
        return {}


@dataclass(frozen=True, slots=True)
class _BatchPlan:
    """How a fixed-batch model's inputs are padded or chunked (read once per backend)."""

    fixed: int | None  # the image input's fixed batch; None: dynamic, run as given
    image: int  # index of the image input (the one whose length counts the images)
    batched: tuple[int, ...]  # inputs whose first dimension is the batch

    @classmethod
    def of(cls, backend: Backend) -> _BatchPlan:
        infos = backend.inputs
        image = next((i for i, info in enumerate(infos) if len(info.shape) == 4), 0)
        fixed = backend.batch
        batched = tuple(i for i, info in enumerate(infos)
                        if info.shape and info.shape[0] == fixed)
        return cls(fixed if fixed and image in batched else None, image, batched)

    def run(self, run: Any, inputs: list[np.ndarray], count: int) -> list[np.ndarray]:
        n = self.fixed
        assert n is not None
        parts: list[list[np.ndarray]] = []
        for start in range(0, count, n):
            take = min(n, count - start)
            chunk = [self._slice(a, start, take, n) if i in self.batched else a
                     for i, a in enumerate(inputs)]
            outputs = run(chunk)
            parts.append([o[:take] if o.ndim and o.shape[0] == n else o for o in outputs])
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(outs, axis=0) for outs in zip(*parts, strict=True)]

    @staticmethod
    def _slice(array: np.ndarray, start: int, take: int, n: int) -> np.ndarray:
        part = np.asarray(array)[start:start + take]
        if take == n:
            return part
        # Zeros, not a repeated image: the padding's results are dropped, and zeros cost the
        # runtime the same while never looking like a real frame in a debugger.
        padded = np.zeros((n, *part.shape[1:]), part.dtype)
        padded[:take] = part
        return padded
