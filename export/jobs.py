"""What one per-format exporter is, what it gets, and what it hands back.

Every exporter module declares one :class:`Exporter` (its format, its function
``export_<fmt>(job: ExportJob) -> ExportedFile``, the tools it records, its gate fallbacks),
registered lazily in :data:`edgekit.export.EXPORTERS` under the format's value. ``export()``
builds one job per (format, precision) cell of the matrix, each with its own scratch
directory, so a failing converter never leaves files another artifact could pick up by mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Format, InputSpec, OutputSpec, Precision
from edgekit.data.dataset import Dataset

from .loaders import LoadedModel

__all__ = ["ExportJob", "ExportedFile", "Exporter", "GateFailure", "Fallback"]


@dataclass(frozen=True, kw_only=True)
class ExportJob:
    """One artifact to produce.

    Attributes:
        model: The loaded source (torch module or ONNX path).
        onnx_fp32: The fp32 ONNX the ONNX exporter already wrote (always present).
        spec: The manifest's input spec (NCHW, RGB, letterbox, /255).
        labels: Class names.
        precision: The precision to produce.
        workdir: Scratch directory for this artifact only.
        calibration: Preprocessed [1, 3, H, W] float32 tensors (from ``edgekit.preprocess``),
            or None when the precision needs none.
        keep_float_tail: Keep the detection head's decode/score tail in float (INT8 of one
            tensor mixing pixel boxes with 0..1 scores destroys the scores: TOOLCHAIN.md).
        batch: Images per call (``export --batch``): 1, N or "dynamic". ``onnx_fp32`` has a
            dynamic batch when it is not 1; formats that cannot leave it free (TFLite) convert
            at N, the others are pinned after the gate (``Exporter.pin_batch``).
    """

    model: LoadedModel
    onnx_fp32: Path
    spec: InputSpec
    labels: list[str]
    precision: Precision
    workdir: Path
    calibration: Sequence[np.ndarray] | None
    keep_float_tail: bool = True
    batch: int | str = 1

    def target(self, format: Format) -> Path:
        """Where the artifact goes: ``model_<precision>`` with the suffix the format's backend
        declares (edgekit.backends), in this job's scratch directory."""
        from edgekit.backends import format_suffixes

        return self.workdir / f"model_{self.precision.value}{format_suffixes()[format][0]}"


@dataclass(frozen=True, kw_only=True)
class ExportedFile:
    """An exporter's result.

    Attributes:
        path: The model file.
        companions: Files that belong to it (OpenVINO's ``.bin``).
        details: Facts for the manifest: layout ("nchw"/"nhwc"), quantization parameters per
            input/output (scale, zero_point, dtype), scheme (e.g. "QDQ U8S8"), tool
            versions, fallback used, ...
    """

    path: Path
    companions: tuple[Path, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class GateFailure:
    """What a format's fallbacks get: the artifact that failed the accuracy gate.

    Attributes:
        job: The job that produced it.
        failing: A copy of the failing file, as first exported.
        dataset: The gate's validation set.
        max_drop: The gate's allowed mAP@0.5:0.95 drop, in points.
        output: The bundle's output spec.
        export: The exporter's function with the options it was first given (e.g. the INT8
            scheme); a fallback calls it with its own job and extra keyword options.
        search: The export's layer ranking (``sensitivity.SearchState``), measured once and
            shared by the formats' mixed-precision candidates.
    """

    job: ExportJob
    failing: Path
    dataset: Dataset
    max_drop: float
    output: OutputSpec
    export: Callable[..., ExportedFile]
    search: Any = None


# (name, run): ``run()`` re-exports one way and returns the new file.
Fallback = tuple[str, Callable[[], ExportedFile]]


def no_fallbacks(failure: GateFailure) -> Iterator[Fallback]:
    """For a format with no fallback of its own."""
    return iter(())


@dataclass(frozen=True, kw_only=True)
class Exporter:
    """One format's exporter and the facts about it that the rest of export/ reads.

    Attributes:
        format: The artifact format it writes.
        export: ``export(job, **options) -> ExportedFile``.
        tools: Packages whose versions go into the bundle's provenance.
        fallbacks: The format's own ways to recover an artifact that failed the gate,
            cheapest first (the gate tries its format-independent ones before these).
        pin_batch: ``pin_batch(file, n)`` fixes a finished file's batch at n in place (after
            the gate, which ran it batch-free); None where the exporter itself converts at
            the job's batch.
    """

    format: Format
    export: Callable[..., ExportedFile]
    tools: tuple[str, ...]
    fallbacks: Callable[[GateFailure], Iterator[Fallback]] = no_fallbacks
    pin_batch: Callable[[Path, int], None] | None = None
