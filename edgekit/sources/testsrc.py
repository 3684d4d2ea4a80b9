"""``testsrc://``: a live camera made of generated road scenes with vehicles moving across.

Options: ``testsrc://?width=640&height=480&fps=30&seed=0&objects=4``. A sequence is one scene
of ``edgekit.data.synth`` (the scenes the sample detector is trained on) set in motion: its
background, its parked and standing objects, and its camera's tone, blur and noise are drawn
once; ``objects`` vehicles drive across it in lanes. Everything is placed and drawn as the
training scenes do it: sizes from the ground plane's perspective, objects drawn far to near,
the camera's photometry over the whole frame, so the sample model meets the distribution it
was trained on. ``resize_after=N`` switches to a different resolution after N frames (to
exercise a camera that changes mode mid-stream).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import DatasetError
from .base import LiveSource, SourceSettings

_INT_OPTIONS = {"width": 640, "height": 480, "seed": 0, "objects": 4, "resize_after": 0}
# The traffic, in the ground plane's metres (edgekit.data.synth's camera, 3 m above the road):
_LANES = 3  # at most, across the view: the far ones drive one way, the near ones the other
_LANE_M = 3.5  # lane width: each lane is this much further from the camera than the last
_NEAREST_M = (10.0, 14.0)  # distance of the nearest lane
_SPEED_M = (0.2, 0.45)  # metres per frame: 11-24 km/h at 15 fps, 22-49 km/h at 30 fps
_GAP_M = 3.0  # at least this much road between two vehicles in one lane
# A counting camera is framed so the vehicles it counts are well resolved: the nearest lane's
# cars are at most 45% of the frame wide, and then the farthest lane's are still about 10-14%
# of its height, where the sample detector finds 88-97% of the vehicles of its own validation
# scenes (benchmarks/tracking_accuracy.py --sizes; 16-56% below 6%).
_NEAR_CAR_WIDTH = 0.45
_SIDEWALK_PX = 6  # still objects stand at least this many rows off the lanes' wheel lines
STILL_IDS = 1_000_000_000  # truth ids from here on are parked or standing objects
_HIDDEN = 0.7  # as the training labels: an object more hidden than this is not labelled


@dataclass(slots=True)
class _Mover:
    patch: np.ndarray  # RGBA, drawn by edgekit.data.synth.draw_object, facing where it drives
    base: float  # the image row its wheels touch: its lane
    phase: float  # where on its lane's loop it starts, in pixels
    speed: float  # pixels per frame, signed (+: left to right)
    loop: float  # pixels from entering the frame to entering it again
    class_id: int


@dataclass(frozen=True, slots=True)
class Truth:
    """Where the generated objects are in one frame: the ground truth a tracker is scored on.

    ``track_id`` is one per pass across the frame: a vehicle that leaves at one edge and
    comes back at the other is a new object to a counter, so it gets a new id. The parked and
    standing objects have ids from ``STILL_IDS`` on. ``visible`` is the share of an object's
    pixels in view (not hidden by a nearer object nor outside the frame); ``labelled`` says
    which objects the training labels would hold (at most 70% hidden, ``_HIDDEN``).
    """

    track_id: np.ndarray  # int64 [N]
    xyxy: np.ndarray  # float32 [N, 4], the part inside the frame
    class_id: np.ndarray  # int64 [N]
    visible: np.ndarray  # float32 [N]

    @property
    def labelled(self) -> np.ndarray:
        return self.visible >= 1.0 - _HIDDEN


class SceneGenerator:
    """Renders frame after frame of one road scene whose vehicles drive left and right."""

    def __init__(self, *, width: int, height: int, seed: int, objects: int) -> None:
        from ..data.synth import Camera, place_object, road_background

        rng = np.random.default_rng(seed)
        self.width, self.height, self.seed = width, height, seed
        self.road, self.background = road_background(rng, width=width, height=height)
        self.movers = _traffic(rng, self.road, objects)
        # Parked vehicles, people, traffic lights: placed as render_scene places them, but
        # off the lanes (on the near or the far side of the road), as nothing stands still
        # in moving traffic: they hide passing vehicles or are hidden by them.
        lanes = [m.base for m in self.movers]
        band = (min(lanes) - _SIDEWALK_PX, max(lanes) + _SIDEWALK_PX) if lanes else (0, -1)
        self.still = []
        for _ in range(int(rng.integers(1, 13))):
            for _ in range(20):  # rows outside the lanes are most of the ground: few tries
                sprite = place_object(rng, self.road)
                if not band[0] <= sprite.depth <= band[1]:
                    self.still.append(sprite)
                    break
        self.camera = Camera.draw(rng, width, height)

    def _x(self, m: _Mover, index: int) -> tuple[int, int]:
        """(left x, pass number) of a mover in frame ``index``: it drives its lane's loop,
        entering at one edge after leaving at the other."""
        w = m.patch.shape[1]
        travelled = m.phase + abs(m.speed) * index
        along, lap = travelled % m.loop, int(travelled // m.loop)
        return (int(along) - w if m.speed > 0 else self.width - int(along)), lap

    def _compose(self, index: int) -> tuple[np.ndarray, Truth]:
        """Frame ``index`` before the camera's photometry, and its truth."""
        from ..data.synth import Sprite, compose

        sprites, ids = list(self.still), [STILL_IDS + k for k in range(len(self.still))]
        for i, m in enumerate(self.movers):
            h, w = m.patch.shape[:2]
            x, lap = self._x(m, index)
            if x + w > 0 and x < self.width:
                sprites.append(Sprite(m.class_id, m.patch, x, int(m.base) - h, (0, 0, w, h),
                                      m.base))
                ids.append(i * 100_000 + lap + 50_000)  # unique per (vehicle, pass)
        image = self.background.copy()
        boxes, visible = compose(image, sprites)
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        truth = Truth(np.asarray(ids, np.int64)[inside], boxes[inside],
                      np.asarray([s.class_id for s in sprites], np.int64)[inside],
                      visible[inside])
        return image, truth

    def frame(self, index: int) -> tuple[np.ndarray, Truth]:
        """Frame ``index`` as the camera gives it (BGR), and where every object in it is."""
        image, truth = self._compose(index)
        # The camera's tone and blur stay; its sensor noise is new in every frame.
        noise = np.random.default_rng([self.seed, index])
        return self.camera.apply(image, noise_rng=noise), truth

    def render(self, index: int) -> np.ndarray:
        return self.frame(index)[0]

    def truth(self, index: int) -> Truth:
        """The objects in frame ``index`` (as ``render`` draws it)."""
        return self._compose(index)[1]


def _traffic(rng: np.random.Generator, road, objects: int) -> list[_Mover]:
    """``objects`` vehicles in up to ``_LANES`` lanes of a road across the view, sized by the
    scene's perspective; the far lanes drive one way and the near ones the other, as on a two-way
    road, and vehicles in one lane keep their distance (no two overlap in a lane)."""
    from ..data.synth import CAR, draw_object

    lanes = min(objects, _LANES)
    if lanes == 0:
        return []
    ground = road.height - road.horizon
    # The nearest lane: low in the frame, its cars at most _NEAR_CAR_WIDTH of it wide (a
    # camera framed on a road, not on one car); the next lanes further by _LANE_M each.
    near = min(0.95 * ground,
               road.row_for_width(CAR, _NEAR_CAR_WIDTH * road.width) - road.horizon)
    near *= rng.uniform(0.8, 1.0)
    nearest = rng.uniform(*_NEAREST_M)
    bases = [road.horizon + near * nearest / (nearest + _LANE_M * k) for k in range(lanes)]
    flip = 1 if rng.random() < 0.5 else -1
    movers: list[_Mover] = []
    for k, base in enumerate(bases):
        count = len(range(k, objects, lanes))
        direction = flip * (1 if k < (lanes + 1) // 2 else -1)
        ppm = road.pixels_per_metre(base)
        speed = direction * float(rng.uniform(*_SPEED_M)) * ppm
        patches, classes = [], []
        for _ in range(count):
            cid = _vehicle_class(rng, road, base)
            w, h = road.size(cid, base, rng.uniform(0.85, 1.15, 2))
            patch = draw_object(rng, cid, w, h)
            patches.append(patch if direction > 0 else patch[:, ::-1].copy())
            classes.append(cid)
        widest = max(p.shape[1] for p in patches)
        loop = max(road.width + widest, count * (widest + _GAP_M * ppm))
        start = float(rng.uniform(0, loop))
        movers += [_Mover(p, base, start + j * loop / count, speed, loop, c)
                   for j, (p, c) in enumerate(zip(patches, classes, strict=True))]
    return movers


def _vehicle_class(rng: np.random.Generator, road, base: float) -> int:
    """A car, truck, bus or motorcycle, as often as the training scenes hold them, among
    those the training scenes would place at this row (a bus is never wider than 3/4 of the
    frame there)."""
    from ..data.synth import CLASS_P, VEHICLES

    fits = [c for c in VEHICLES if road.base_range(c)[0] <= base <= road.base_range(c)[1]]
    fits = fits or [VEHICLES[0]]
    p = np.array([CLASS_P[c] for c in fits])
    return int(rng.choice(fits, p=p / p.sum()))


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
