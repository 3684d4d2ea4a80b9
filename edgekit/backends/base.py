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
        """The model's outputs, in order."""
        return self._outputs

    @property
    @abstractmethod
    def executed_on(self) -> str:
        """The device/provider that REALLY executes, read back from the runtime."""

    @abstractmethod
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Runs one inference; inputs and outputs in model order."""

    def metadata(self) -> dict[str, str]:
        """Key/value metadata stored in the model file (Ultralytics writes names, imgsz,
        stride, task...); empty where the format or runtime has none."""
        return {}

    def versions(self) -> dict[str, str]:
        """Runtime library versions, for provenance and benchmark fingerprints."""
        return {}
