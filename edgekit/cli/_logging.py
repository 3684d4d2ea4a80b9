"""Quiet by default, everything under ``--verbose``: the CLI's one logging set-up.

By default the terminal shows edgekit's own lines (progress, results, its warnings such as a
camera's retries) and errors. The libraries underneath talk a lot: TensorFlow/absl and oneDNN
banners, XNNPACK delegate notes, torch deprecation warnings, OpenCV's and FFmpeg's per-packet
lines. Native libraries read their log levels from the environment when they first load, so
the levels are set here, before any command imports them; a user's own setting always wins.
"""

from __future__ import annotations

import logging
import os

# name -> (quiet value, verbose value or None to leave unset). Read when the library loads.
NATIVE_LEVELS: dict[str, tuple[str, str | None]] = {
    "TORCH_LOGS": ("-all", None),  # torch's own loggers at ERROR (pytree deprecation notes)
    "TF_CPP_MIN_LOG_LEVEL": ("3", "0"),  # TensorFlow/LiteRT C++ logs, the oneDNN banner
    "GLOG_minloglevel": ("3", "0"),  # glog users (some converters)
    "OPENCV_LOG_LEVEL": ("ERROR", "INFO"),  # OpenCV's [ WARN:0@...] lines
    "OPENCV_FFMPEG_LOGLEVEL": ("-8", "32"),  # FFmpeg inside OpenCV: AV_LOG_QUIET / INFO
}
_MARK = "_edgekit_cli"
_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


class _ConsoleHandler(logging.Handler):
    """Log records as plain lines on the CLI's stderr console (between progress bars)."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        from ._ui import console

        try:
            level = record.levelname.lower()
            where = f" [{record.name}]" if self.verbose else ""
            line = Text(f"{level}{where}: ", style=_STYLES.get(record.levelname, "dim"))
            line.append(record.getMessage())
            console.print(line, highlight=False, soft_wrap=True)
        except Exception:  # logging must never take the command down
            self.handleError(record)


def configure(*, verbose: bool) -> None:
    """Sets the native levels and Python logging for one CLI invocation (idempotent)."""
    for name, (quiet, loud) in NATIVE_LEVELS.items():
        value = loud if verbose else quiet
        if value is not None:
            os.environ.setdefault(name, value)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
    handler = _ConsoleHandler(verbose=verbose)
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    # Libraries' WARNINGs (and Python warnings, routed to logging) are chatter a user cannot
    # act on; edgekit's own INFO lines (a camera retrying) are what the user should see.
    root.setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("edgekit").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
