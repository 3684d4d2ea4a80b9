"""``testsrc://``: a live camera made of generated road scenes with vehicles moving across.

Options: ``testsrc://?width=640&height=480&fps=30&seed=0&objects=4``. The background and the
vehicles come from ``edgekit.data.synth.render_scene`` (the scenes the sample detector is
trained on), so the sample model really detects and tracks them. ``resize_after=N`` switches to
a different resolution after N frames (to exercise a camera that changes mode mid-stream).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import DatasetError
from .base import LiveSource, SourceSettings

_INT_OPTIONS = {"width": 640, "height": 480, "seed": 0, "objects": 4, "resize_after": 0}


@dataclass(slots=True)
class _Mover:
    patch: np.ndarray  # RGBA, as edgekit.data.synth draws objects
    x: float
    y: int
    speed: float  # pixels per frame, signed
    class_id: int = 0


@dataclass(frozen=True, slots=True)
class Truth:
    """Where the generated vehicles are in one frame: the ground truth a tracker is scored on.

    ``track_id`` is one per pass across the frame: a vehicle that leaves at one edge and
    comes back at the other is a new object to a counter, so it gets a new id.
    """

    track_id: np.ndarray  # int64 [N]
    xyxy: np.ndarray  # float32 [N, 4], the visible part (clipped to the frame)
    class_id: np.ndarray  # int64 [N]


class SceneGenerator:
    """Renders frame after frame of a scene whose vehicles drive left and right."""

    def __init__(self, *, width: int, height: int, seed: int, objects: int) -> None:
        from ..data.synth import draw_object, render_scene

        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        # The background is a scene too: its parked vehicles and people stay put.
        self.background, self.still_boxes, self.still_classes = render_scene(
            rng, width=width, height=height)
        self.movers: list[_Mover] = []
        for _ in range(100):  # render donor scenes until enough vehicle patches are cut out
            if len(self.movers) >= objects:
                break
            image, boxes, classes = render_scene(rng, width=width, height=height)
            for box, cls in zip(boxes, classes, strict=True):
                x1, y1, x2, y2 = (int(v) for v in box)
                if cls <= 3 and (x2 - x1) >= 24 and (y2 - y1) >= 16 and len(self.movers) < objects:
                    # The donor scene gives a size and a row that fit the road's perspective;
                    # the vehicle itself is drawn as the training scenes draw it (an RGBA
                    # sprite, the background showing around it), facing where it drives.
                    speed = float(rng.uniform(2, 6)) * (1 if rng.random() < 0.5 else -1)
                    patch = draw_object(rng, int(cls), x2 - x1, y2 - y1)
                    if speed < 0:
                        patch = patch[:, ::-1].copy()
                    self.movers.append(_Mover(patch, float(rng.uniform(0, width)), y1, speed,
                                              int(cls)))

    def _place(self, m: _Mover, index: int) -> tuple[int, int]:
        """(left x, pass number) of a mover: it wraps around, entering from the edge."""
        w = m.patch.shape[1]
        span = self.width + w
        travelled = m.x + m.speed * index
        return int(travelled % span) - w, int(travelled // span)

    def render(self, index: int) -> np.ndarray:
        from ..data.synth import paste

        image = self.background.copy()
        for m in self.movers:
            paste(image, m.patch, self._place(m, index)[0], m.y)
        return image

    def truth(self, index: int) -> Truth:
        """The objects in frame ``index`` (as ``render`` draws it): the background's still ones
        and the moving vehicles.

        An object hidden behind one drawn later keeps its box: trackers are expected to
        keep an occluded track, and the metrics count a miss there honestly.
        """
        ids = [1_000_000_000 + k for k in range(len(self.still_boxes))]
        boxes = [tuple(b) for b in self.still_boxes]
        classes = [int(c) for c in self.still_classes]
        for i, m in enumerate(self.movers):
            h, w = m.patch.shape[:2]
            x, lap = self._place(m, index)
            x0, x1 = max(x, 0), min(x + w, self.width)
            if x1 > x0:
                ids.append(i * 100_000 + lap + 50_000)  # unique per (vehicle, pass)
                boxes.append((x0, m.y, x1, m.y + h))
                classes.append(m.class_id)
        return Truth(np.asarray(ids, np.int64), np.asarray(boxes, np.float32).reshape(-1, 4),
                     np.asarray(classes, np.int64))


class TestSource(LiveSource):
    """Generated frames at a fixed rate, timestamped at generation like a camera's."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        query = parse_qs(urlsplit(uri).query)
        try:
            opts = {k: int(query[k][-1]) if k in query else v for k, v in _INT_OPTIONS.items()}
            self.fps = float(query["fps"][-1]) if "fps" in query else 30.0
        except ValueError as exc:
            raise DatasetError(f"{uri}: {exc}.", hint="Options are numbers, as "
                               "testsrc://?width=640&height=480&fps=30&objects=4.") from None
        if self.fps <= 0 or opts["width"] < 64 or opts["height"] < 64:
            raise DatasetError(f"{uri}: fps must be > 0 and the size at least 64x64.")
        self.options = opts
        self._next = 0.0
        self._count = 0

    def _open(self) -> object:
        o = self.options
        return [SceneGenerator(width=o["width"], height=o["height"], seed=o["seed"],
                               objects=o["objects"])]

    def _grab(self, handle: object) -> np.ndarray | None:
        state: list[SceneGenerator] = handle  # type: ignore[assignment]
        now = time.monotonic()
        self._next = max(self._next + 1.0 / self.fps, now)
        self._stop.wait(max(0.0, self._next - now))
        after = self.options["resize_after"]
        if after and self._count == after:
            g = state[0]  # the "camera" switches mode: same scene, other resolution
            state[0] = SceneGenerator(width=g.width * 3 // 4, height=g.height * 3 // 4,
                                      seed=self.options["seed"], objects=len(g.movers))
        self._count += 1
        return state[0].render(self._count)
