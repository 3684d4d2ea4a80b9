"""Native libraries' console lines, kept for a debug log instead of the user's terminal.

Some C/C++ code writes to file descriptor 2 directly, with no level a user can set: LiteRT
prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every interpreter it
makes. Around such calls the descriptor is pointed at a temporary file and what was written
is logged at DEBUG (shown with `edgekit --verbose`). Only for short calls made before worker
threads run: anything another thread writes to stderr meanwhile lands in the log too.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_to_log(logger: str) -> Iterator[None]:
    """Logs what native code writes to stderr during the block at DEBUG on ``logger``.

    When that logger already shows DEBUG, the text goes to the terminal as it comes.
    """
    log = logging.getLogger(logger)
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("%s", line)
