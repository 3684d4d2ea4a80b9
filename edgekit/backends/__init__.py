"""Runtime backends behind one interface, chosen through a registry.

Entries are lazy ``"module:Class"`` strings: ``import edgekit.backends`` loads no runtime.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import Format
from ..errors import UnknownNameError
from ..registry import Registry
from .base import Backend, BackendOptions, Capabilities, TensorInfo

BACKENDS: Registry[type[Backend]] = Registry(
    "backend",
    {
        "onnxruntime": "edgekit.backends.onnxruntime:OnnxRuntimeBackend",
        "openvino": "edgekit.backends.openvino:OpenVinoBackend",
        "litert": "edgekit.backends.litert:LiteRtBackend",
    },
)

# Which backend runs which artifact format by default (the first one listed wins).
FORMAT_BACKENDS: dict[Format, tuple[str, ...]] = {
    Format.ONNX: ("onnxruntime",),
    Format.OPENVINO: ("openvino",),
    Format.TFLITE: ("litert",),
}


def backend_for(format: Format, name: str | None = None) -> type[Backend]:
    """Returns the backend class for a format (or the named one), checking it can run it."""
    names = (name,) if name else FORMAT_BACKENDS.get(format, ())
    if not names:
        raise UnknownNameError(
            f"No backend runs the '{format}' format in this edgekit.",
            hint=f"Formats with a backend: {', '.join(str(f) for f in FORMAT_BACKENDS)}.",
        )
    cls = BACKENDS.load(names[0])
    if format not in cls.capabilities.formats:
        raise UnknownNameError(
            f"The backend '{names[0]}' cannot run '{format}' files.",
            hint=f"It runs: {', '.join(str(f) for f in cls.capabilities.formats)}.",
        )
    return cls


def load_backend(
    path: str | Path,
    format: Format,
    *,
    name: str | None = None,
    options: BackendOptions | None = None,
) -> Backend:
    """Loads a model file on the backend chosen for its format."""
    return backend_for(format, name)(Path(path), options=options or BackendOptions())


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "Capabilities",
    "TensorInfo",
    "backend_for",
    "load_backend",
]
