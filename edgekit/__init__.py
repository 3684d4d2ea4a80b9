"""edgekit: from a trained PyTorch detector to a measured, real-time detector on edge hardware.

``import edgekit`` is light: names are loaded on first access, so no runtime (onnxruntime,
OpenVINO, LiteRT), torch or OpenCV is imported until it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    "Frame": "types",
    "Detections": "types",
    "Bundle": "bundle",
    "BundleWriter": "bundle",
    "Manifest": "bundle",
    "InputSpec": "bundle",
    "OutputSpec": "bundle",
    "Artifact": "bundle",
    "Provenance": "bundle",
    "Format": "bundle",
    "Precision": "bundle",
    "Layout": "bundle",
    "ColorOrder": "bundle",
    "Detector": "detector",
    "open_bundle": "detector",
    "BackendOptions": "backends",
    "load_backend": "backends",
    "load_dataset": "data.dataset",
    "evaluate": "eval",
    "EdgekitError": "errors",
    "BundleError": "errors",
    "ModelError": "errors",
    "DatasetError": "errors",
    "MissingDependencyError": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .backends import BackendOptions, load_backend
    from .bundle import (
        Artifact,
        Bundle,
        BundleWriter,
        ColorOrder,
        Format,
        InputSpec,
        Layout,
        Manifest,
        OutputSpec,
        Precision,
        Provenance,
    )
    from .data.dataset import load_dataset
    from .detector import Detector, open_bundle
    from .errors import BundleError, DatasetError, EdgekitError, MissingDependencyError, ModelError
    from .eval import evaluate
    from .types import Detections, Frame
