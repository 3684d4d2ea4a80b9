"""The Debian programs some tests drive for real, and how a test asks for one.

`make test` installs them (tools/system-deps.sh) where it runs as root or with passwordless
sudo. Elsewhere a test that needs a missing one is skipped with the package to install, never
failed with a FileNotFoundError.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HINT = "run `make system-deps` as root, or `sudo apt-get install {package}`"


def require_program(program: str, package: str) -> str:
    """Returns the program's path, or skips the calling test naming the package to install."""
    path = shutil.which(program) or (program if Path(program).is_file() else None)
    if path is None:
        pytest.skip(f"needs {program} (Debian package {package}): " + HINT.format(package=package))
    return path


def require_gst_rtsp() -> str:
    """The system python3 with gst-rtsp-server's introspection data (the RTSP test server)."""
    python = require_program("/usr/bin/python3", "python3")
    probe = subprocess.run(
        [python, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
                       "from gi.repository import GstRtspServer"],
        capture_output=True)
    if probe.returncode != 0:
        packages = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp"
        pytest.skip(f"needs gst-rtsp-server ({packages}): " + HINT.format(package=packages))
    return python
