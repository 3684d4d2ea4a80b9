"""``window``: an on-screen window per camera (a desktop, or a board with a monitor)."""

from __future__ import annotations

import os

from ..errors import EdgekitError
from .base import Result, Sink


def has_display() -> bool:
    """Whether a display server is reachable (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink(Sink):
    """Shows annotated frames with ``cv2.imshow``; a view, so it may skip frames."""

    lossless = False

    def open(self) -> None:
        import cv2

        if not has_display():
            raise EdgekitError("The 'window' sink needs a display; none is set (DISPLAY).",
                               hint="Use the live view instead: --sink http://127.0.0.1:8080")
        gui = [x for x in cv2.getBuildInformation().splitlines() if x.strip().startswith("GUI:")]
        if gui and gui[0].split(":", 1)[1].strip() == "NONE":
            raise EdgekitError("This OpenCV has no GUI (opencv-python-headless).",
                               hint="pip install opencv-python, or use the http:// live view.")

    def write(self, result: Result) -> None:
        import cv2

        cv2.imshow(f"edgekit {result.camera}", result.annotated())
        cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()
