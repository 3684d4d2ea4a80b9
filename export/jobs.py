"""What one per-format exporter gets, and what it hands back.

Every exporter is ``export_<fmt>(job: ExportJob) -> ExportedFile``, registered lazily in
:data:`edgekit.export.EXPORTERS` under the format's value. ``export()`` builds one job per
(format, precision) cell of the matrix, each with its own scratch directory, so a failing
converter never leaves files another artifact could pick up by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import InputSpec, Precision

from .loaders import LoadedModel

__all__ = ["ExportJob", "ExportedFile"]


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
    """

    model: LoadedModel
    onnx_fp32: Path
    spec: InputSpec
    labels: list[str]
    precision: Precision
    workdir: Path
    calibration: list[np.ndarray] | None
    keep_float_tail: bool = True


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
