"""Errors a user can act on: what failed, on which input, and what to do next."""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose.

    The CLI prints these as one clear message (no traceback) and exits non-zero.

    Args:
        message: What failed, naming the input (a file, a URI, a tensor).
        hint: What the user can do about it.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class BundleError(EdgekitError):
    """A bundle is missing, malformed, tampered with or incomplete."""


class ModelError(EdgekitError):
    """A model file cannot be read, converted or is not what the caller expects."""


class DatasetError(EdgekitError):
    """A dataset or image source is missing, empty or malformed."""


def install_command(package: str, extra: str | None = None) -> str:
    """The command that installs ``package``: through edgekit's extra where one has it."""
    return f"pip install 'edgekit[{extra}]'" if extra else f"pip install {package}"


class MissingDependencyError(EdgekitError):
    """An optional runtime or tool is not installed."""

    def __init__(self, package: str, *, extra: str | None = None, purpose: str = "") -> None:
        install = install_command(package, extra)
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"The package '{package}' is not installed{what}.", hint=install)
        self.package = package


class UnknownNameError(EdgekitError):
    """A name looked up in a registry (backend, format, board) does not exist."""


def require(
    module: str, *, package: str | None = None, extra: str | None = None, purpose: str = ""
):
    """Imports an optional module, or raises MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra=extra, purpose=purpose) from exc
