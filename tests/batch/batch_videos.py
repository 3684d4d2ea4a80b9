"""Short generated road videos (the sample detector sees their vehicles) and frame reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, *, frames: int, fps: float = 10.0, width: int = 160,
                height: int = 120, seed: int = 0) -> Path:
    """Writes an MPEG-4 (mp4v) .mp4 whose vehicles drive across (keyframes every 12 frames,
    so segment seeks land between keyframes)."""
    import cv2

    from edgekit.sources.testsrc import SceneGenerator

    scene = SceneGenerator(width=width, height=height, seed=seed, objects=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(frames):
        writer.write(scene.render(i))
    writer.release()
    return path


def read_all_frames(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames
