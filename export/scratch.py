"""One scratch directory per export, gone however the export ends.

Issue 16: a killed export left 121 MB in /tmp. Three things make sure nothing stays:

- everything an export writes on the side lives under one directory it owns (the per-cell
  work directories, the gate's measuring copy, and, through ``tempfile.tempdir`` and
  ``TMPDIR``, the temporary files of the converters themselves: onnxruntime's calibration
  model, NNCF's, litert-torch's, onnx2tf's subprocess);
- SIGTERM raises :class:`ExportInterrupted` in the main thread (SIGINT already raises
  KeyboardInterrupt), so every ``with`` block unwinds: the directory is removed,
  ``subprocess.run`` kills its child, a staging directory beside the bundle is removed;
- a process killed without a chance to clean (SIGKILL, the kernel's OOM killer) leaves its
  directory named with its pid; the next export removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import EdgekitError

__all__ = ["ExportInterrupted", "PREFIX", "interruptible", "scratch"]

PREFIX = "edgekit-export-"


class ExportInterrupted(EdgekitError):
    """The export was stopped by a signal; what was finished is in the bundle."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"The export was interrupted ({name}).",
                         hint="Every artifact finished before the signal is in the bundle "
                              "(see its edgekit.json); run the export again for the rest.")
        self.exit_code = 128 + signum  # the shell's convention for a signal's death


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turns SIGTERM into :class:`ExportInterrupted` while the export runs (main thread only:
    Python delivers signals there; elsewhere the caller owns signal handling)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise ExportInterrupted(signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A directory for the export's side files, the temporary directory of every tool it
    runs while it lasts, and removed at the end (exceptions and signals included)."""
    _remove_orphans(Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    tools = root / "tmp"
    tools.mkdir()
    before_dir, before_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(tools), str(tools)
    try:
        yield root
    finally:
        tempfile.tempdir = before_dir
        if before_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before_env
        shutil.rmtree(root, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    """Removes the scratch of exports whose process no longer exists (killed with SIGKILL)."""
    for path in parent.glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and path.is_dir() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
