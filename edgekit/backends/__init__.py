"""Runtime backends behind one interface, chosen through a registry.

Entries are lazy ``"module:Class"`` strings: ``import edgekit.backends`` loads no runtime.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import Format
from ..errors import UnknownNameError
from ..registry import Registry
from .base import Backend, BackendOptions, Capabilities, Runtime, TensorInfo

BACKENDS: Registry[type[Backend]] = Registry(
    "backend",
    {
        "onnxruntime": "edgekit.backends.onnxruntime:OnnxRuntimeBackend",
        "openvino": "edgekit.backends.openvino:OpenVinoBackend",
        "litert": "edgekit.backends.litert:LiteRtBackend",
    },
)


# Views over what each backend declares (format, suffixes, runtimes): nothing here restates a
# fact about a format; a new backend brings its own.


def backend_classes() -> list[type[Backend]]:
    """Every registered backend class (imports their modules, which load no runtime)."""
    return [cls for _, cls in BACKENDS.entries()]


def format_suffixes() -> dict[Format, tuple[str, ...]]:
    """Each format's file suffixes, as its default backend declares them."""
    return {cls.format: cls.suffixes for cls in backend_classes()}


def format_of(path: str | Path) -> Format | None:
    """The artifact format a file's suffix names, or None."""
    suffix = Path(path).suffix.lower()
    return next((f for f, s in format_suffixes().items() if suffix in s), None)


def readers(format: Format | None = None) -> list[str]:
    """Backends that can read ``format`` (every backend when None), its own backend first."""
    classes = [c for c in backend_classes() if format is None or format in c.capabilities.formats]
    return [c.name for c in sorted(classes, key=lambda c: c.format is not format)]


def format_runtimes(format: Format) -> list[tuple[str, Runtime]]:
    """(backend, runtime) pairs that run ``format`` by default, best first (fallbacks last)."""
    return [(c.name, r) for c in backend_classes() if c.format is format for r in c.runtimes]


def runtimes() -> list[Runtime]:
    """Every runtime package any backend can run on."""
    return [r for c in backend_classes() for r in c.runtimes]


def install_hint() -> str:
    """How to install a runtime for each format."""
    return "; ".join(f"{c.format}: {c.runtimes[0].install}" for c in backend_classes())


def backend_for(format: Format, name: str | None = None) -> type[Backend]:
    """Returns the backend class for a format (or the named one), checking it can run it."""
    names = (name,) if name else tuple(dict.fromkeys(b for b, _ in format_runtimes(format)))
    if not names:
        raise UnknownNameError(
            f"No backend runs the '{format}' format in this edgekit.",
            hint=f"Formats with a backend: {', '.join(str(f) for f in format_suffixes())}.",
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
    "Runtime",
    "TensorInfo",
    "backend_classes",
    "backend_for",
    "format_of",
    "format_runtimes",
    "format_suffixes",
    "install_hint",
    "load_backend",
    "readers",
    "runtimes",
]
