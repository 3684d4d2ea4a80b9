"""Deterministic synthetic road scenes with exact boxes, for the sample detector and tests.

Scenes are drawn with OpenCV primitives only (numpy + cv2, no torch), fast enough to render
training data on the fly: a 512x384 scene takes a few milliseconds on one core. Every object is
drawn into its own small RGBA patch and composited far-to-near, so its box is the exact extent
of its pixels and occlusion is measured from a per-pixel owner map rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CLASS_P", "LABELS", "VEHICLES", "Camera", "Road", "Sprite", "compose", "draw_object",
           "paste", "place_object", "render_scene", "road_background", "write_dataset"]

LABELS: tuple[str, ...] = (
    "car", "truck", "bus", "motorcycle", "bicycle", "pedestrian", "traffic_light",
)
CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE, PEDESTRIAN, TRAFFIC_LIGHT = range(len(LABELS))

# Real-world (width, height) in metres; with the camera model below these give plausible
# relative sizes (a bus is ~2x a car's height, a pedestrian is tall and thin).
_SIZE_M = {
    CAR: (4.2, 1.5), TRUCK: (7.5, 3.1), BUS: (11.0, 3.1), MOTORCYCLE: (2.0, 1.65),
    BICYCLE: (1.75, 1.05), PEDESTRIAN: (0.55, 1.75), TRAFFIC_LIGHT: (0.35, 0.95),
}
# Vehicles are a bit more common than the rest, as on a real road.
CLASS_P = np.array([0.22, 0.12, 0.1, 0.12, 0.12, 0.18, 0.14])
VEHICLES: tuple[int, ...] = (CAR, TRUCK, BUS, MOTORCYCLE)
_CAMERA_HEIGHT_M = 3.0  # pixels per metre at image row y is (y - horizon) / camera height
_MAX_VISIBLE_HIDDEN = 0.7  # objects more hidden than this are dropped from the labels
_MIN_BOX_PX = 4.0
_NOISE = np.random.default_rng(20240611).normal(0.0, 1.0, (1024, 1024, 3)).astype(np.float32)


@dataclass
class Sprite:
    """One object drawn in local coordinates, ready to composite."""

    class_id: int
    patch: np.ndarray  # h x w x 4, BGR + coverage alpha (0 or 255)
    x0: int  # top-left corner in the image
    y0: int
    box: tuple[int, int, int, int]  # labelled part (x0, y0, x1, y1) in patch coordinates
    depth: float  # base row: larger is nearer, drawn later


@dataclass(frozen=True, slots=True)
class Road:
    """A scene's ground plane: where the horizon is and how large things look on it.

    The camera sits ``_CAMERA_HEIGHT_M`` above flat ground, so an object standing on image row
    ``base`` is ``(base - horizon) / camera height`` pixels per metre: every object of a scene,
    still or moving, is sized by this one rule.
    """

    width: int
    height: int
    horizon: int
    vanish_x: float

    def pixels_per_metre(self, base: float) -> float:
        """Scale of an object whose lowest row (where it touches the ground) is ``base``."""
        return (base - self.horizon) / _CAMERA_HEIGHT_M

    def base_range(self, class_id: int) -> tuple[float, float]:
        """Rows an object of ``class_id`` may stand on: from about 10 px large to the largest
        the training scenes hold (about half the image)."""
        wm, hm = _SIZE_M[class_id]
        lo = self.horizon + max(2.0, 10.0 * _CAMERA_HEIGHT_M / max(wm, hm))
        hi = self.horizon + min(self.height * 1.05 - self.horizon,
                                0.55 * self.height * _CAMERA_HEIGHT_M / hm,
                                0.75 * self.width * _CAMERA_HEIGHT_M / wm)
        return lo, max(lo + 1, hi)

    def row_for_width(self, class_id: int, pixels: float) -> float:
        """The row on which an object of ``class_id`` is ``pixels`` wide."""
        return self.horizon + pixels * _CAMERA_HEIGHT_M / _SIZE_M[class_id][0]

    def size(self, class_id: int, base: float, jitter: np.ndarray) -> tuple[int, int]:
        """(width, height) in pixels of an object of ``class_id`` standing on row ``base``."""
        wm, hm = _SIZE_M[class_id]
        ppm = self.pixels_per_metre(base)
        return max(3, int(wm * ppm * jitter[0])), max(3, int(hm * ppm * jitter[1]))


@dataclass(frozen=True, slots=True)
class Camera:
    """A scene's photometry: tone curve, optional blur, optional sensor noise.

    ``render_scene`` draws one per scene; a video of one scene (``testsrc://``) keeps it for
    every frame, as a real camera keeps its exposure, and only draws fresh noise per frame.
    """

    lut: np.ndarray  # uint8 [256]
    blur_sigma: float | None
    noise_at: tuple[int, int] | None  # offset into the noise bank
    noise_scale: float

    @classmethod
    def draw(cls, rng: np.random.Generator, width: int, height: int) -> Camera:
        gamma = rng.uniform(0.6, 1.6)
        contrast, brightness = rng.uniform(0.6, 1.25), rng.uniform(-0.25, 0.2)
        x = np.linspace(0.0, 1.0, 256) ** gamma
        lut = np.clip(((x - 0.5) * contrast + 0.5 + brightness) * 255.0, 0, 255).astype(np.uint8)
        sigma = float(rng.uniform(0.5, 1.6)) if rng.random() < 0.35 else None
        noise_at, scale = None, 0.0
        if rng.random() < 0.5:
            noise_at = _noise_offset(rng, width, height)
            scale = float(rng.uniform(2.0, 12.0))
        return cls(lut, sigma, noise_at, scale)

    def apply(self, image: np.ndarray, *, noise_rng: np.random.Generator | None = None
              ) -> np.ndarray:
        """The image as this camera sees it; ``noise_rng`` draws this frame's own noise."""
        image = cv2.LUT(image, self.lut)
        if self.blur_sigma is not None:
            image = cv2.GaussianBlur(image, (0, 0), self.blur_sigma)
        if self.noise_at is not None:
            h, w = image.shape[:2]
            oy, ox = self.noise_at if noise_rng is None else _noise_offset(noise_rng, w, h)
            noise = _NOISE[oy:oy + h, ox:ox + w]
            if noise.shape[:2] == (h, w):
                image = cv2.scaleAdd(noise, self.noise_scale, image.astype(np.float32))
                image = np.clip(image, 0, 255).astype(np.uint8)
        return image


def _noise_offset(rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    """A random crop of a fixed noise bank: per-pixel noise at a fraction of the cost of
    drawing fresh normals for every scene (~3 ms for 512x384x3)."""
    oy = int(rng.integers(0, _NOISE.shape[0] - height + 1)) if height <= _NOISE.shape[0] else 0
    ox = int(rng.integers(0, _NOISE.shape[1] - width + 1)) if width <= _NOISE.shape[1] else 0
    return oy, ox


def render_scene(rng: np.random.Generator, *, width: int = 512,
                 height: int = 384) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders one random road scene.

    Args:
        rng: Source of randomness; the same generator state gives the same scene.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        (image, boxes, class_ids): BGR uint8 [height, width, 3]; float32 [N, 4] xyxy boxes in
        pixels (the full extent of each object, clipped to the image); int64 [N] indices into
        ``LABELS``. N is 0..12 (1..12 objects are placed; hidden ones are dropped).
    """
    road, image = road_background(rng, width=width, height=height)
    count = int(rng.integers(1, 13))
    sprites = sorted((place_object(rng, road) for _ in range(count)), key=lambda s: s.depth)
    owner = np.full((height, width), -1, np.int16)
    totals = [_composite(image, owner, s, i) for i, s in enumerate(sprites)]
    boxes, classes = _visible_boxes(sprites, owner, totals, width, height)
    image = Camera.draw(rng, width, height).apply(image)
    return image, boxes, classes


def road_background(rng: np.random.Generator, *, width: int, height: int
                    ) -> tuple[Road, np.ndarray]:
    """A scene's ground plane and its empty background (sky, ground, road, buildings), the
    first part of ``render_scene``: objects are then placed with ``place_object``."""
    horizon = int(height * rng.uniform(0.28, 0.5))
    vanish_x = width * rng.uniform(0.3, 0.7)
    road = Road(width, height, horizon, vanish_x)
    return road, _background(rng, width, height, horizon, vanish_x)


def compose(image: np.ndarray, sprites: list[Sprite]) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``sprites`` far to near (by ``depth``) over ``image`` in place, as
    ``render_scene`` does.

    Returns:
        (boxes, visible): float32 [N, 4] xyxy of each sprite's labelled part clipped to the
        image, and float32 [N] the share of its labelled pixels that is visible: not hidden by
        a nearer object nor outside the image (0 for one wholly hidden or outside). Both are
        in the order of ``sprites``.
    """
    h, w = image.shape[:2]
    order = sorted(range(len(sprites)), key=lambda i: sprites[i].depth)
    owner = np.full((h, w), -1, np.int16)
    for i in order:
        _composite(image, owner, sprites[i], i)
    boxes = np.zeros((len(sprites), 4), np.float32)
    visible = np.zeros(len(sprites), np.float32)
    for i, s in enumerate(sprites):
        x0, y0, x1, y1 = _image_box(s, w, h)
        bx0, by0, bx1, by1 = s.box
        total = int(np.count_nonzero(s.patch[by0:by1, bx0:bx1, 3]))
        if x1 > x0 and y1 > y0 and total:
            boxes[i] = (x0, y0, x1, y1)
            visible[i] = np.count_nonzero(owner[y0:y1, x0:x1] == i) / total
    return boxes, visible


def write_dataset(root: str | Path, *, count: int, seed: int = 0, width: int = 512,
                  height: int = 384, progress: Callable[[int], None] | None = None) -> Path:
    """Writes ``count`` scenes as JPEG files plus a COCO detection ``annotations.json``.

    Image ``i`` is rendered from ``np.random.default_rng([seed, i])``, so any prefix of a
    dataset is reproducible on its own and seeds never overlap between images.

    Args:
        root: Output directory; ``images/`` and ``annotations.json`` are created in it.
        count: Number of images.
        seed: Dataset seed.
        width: Image width.
        height: Image height.
        progress: Called with the number of images written so far, after each image.

    Returns:
        The path of ``annotations.json``.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        image, boxes, classes = render_scene(np.random.default_rng([seed, i]), width=width,
                                             height=height)
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(root / "images" / name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        for box, cid in zip(boxes.tolist(), classes.tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": cid + 1,
                "bbox": [round(box[0], 2), round(box[1], 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2), "iscrowd": 0,
            })
        if progress is not None:
            progress(i + 1)
    categories = [{"id": i + 1, "name": name, "supercategory": "road"}
                  for i, name in enumerate(LABELS)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


# --- scene -------------------------------------------------------------------------------


def _color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _background(rng: np.random.Generator, width: int, height: int, horizon: int,
                vanish_x: float) -> np.ndarray:
    """Sky gradient, ground, road with lane markings and sidewalks, some buildings."""
    image = np.empty((height, width, 3), np.uint8)
    top, bottom = np.array(_color(rng, 120, 256), np.float32), np.array(_color(rng, 90, 230))
    ramp = np.linspace(0.0, 1.0, max(horizon, 1), dtype=np.float32)[:, None]
    image[:horizon] = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)[:, None, :]
    image[horizon:] = _color(rng, 40, 140)
    for _ in range(int(rng.integers(0, 7))):  # buildings / trees on the horizon: distractors
        bw, bh = int(rng.integers(20, width // 3)), int(rng.integers(5, max(6, horizon)))
        bx = int(rng.integers(-bw // 2, width))
        cv2.rectangle(image, (bx, horizon - bh), (bx + bw, horizon), _color(rng, 30, 200), -1)
    road_half = width * rng.uniform(0.35, 0.9)
    walk = road_half * rng.uniform(0.15, 0.4)
    vx, by = vanish_x, height - 1
    _fill(image, [(vx - 2, horizon), (vx + 2, horizon), (vx + road_half + walk, by),
                  (vx - road_half - walk, by)], _color(rng, 110, 200))
    _fill(image, [(vx, horizon), (vx, horizon), (vx + road_half, by), (vx - road_half, by)],
          _color(rng, 40, 110))
    lanes = int(rng.integers(1, 4))
    paint = (230, 230, 230) if rng.random() < 0.7 else (40, 200, 230)
    for k in range(1, lanes + 1):
        _dashes(image, rng, vx, horizon, vx - road_half + 2 * road_half * k / (lanes + 1), by,
                paint)
    return image


def _fill(image: np.ndarray, points: list[tuple[float, float]], color: tuple) -> None:
    cv2.fillPoly(image, [np.round(np.array(points)).astype(np.int32)], color)


def _dashes(image: np.ndarray, rng: np.random.Generator, x0: float, y0: int, x1: float, y1: int,
            color: tuple) -> None:
    """Lane dashes whose length and width grow towards the camera (perspective)."""
    t = float(rng.uniform(0.02, 0.08))
    while t < 1.0:
        t_end = min(1.0, t * 1.35 + 0.01)
        p = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
        q = (x0 + (x1 - x0) * t_end, y0 + (y1 - y0) * t_end)
        thick = max(1, int(round(6 * t)))
        cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), color, thick)
        t = t_end * 1.25 + 0.01


def place_object(rng: np.random.Generator, road: Road) -> Sprite:
    """Picks a class, a ground position and a size from the perspective model, draws it."""
    width, height, horizon, vanish_x = road.width, road.height, road.horizon, road.vanish_x
    cid = int(rng.choice(len(LABELS), p=CLASS_P))
    jitter = rng.uniform(0.85, 1.15, 2)
    base = rng.uniform(*road.base_range(cid))
    ppm = road.pixels_per_metre(base)
    w, h = road.size(cid, base, jitter)
    if cid == TRAFFIC_LIGHT:
        patch, box = _traffic_light(rng, w, h, ppm)
    else:
        patch, box = draw_object(rng, cid, w, h), (0, 0, w, h)
        if rng.random() < 0.5:  # facing left or right
            patch = patch[:, ::-1].copy()
    ph, pw = patch.shape[:2]
    # Mostly on or near the road; at least ~40% of the width stays inside the image.
    spread = (base - horizon) / max(1.0, height - horizon) * width * 0.9 + 20
    cx = float(np.clip(vanish_x + rng.normal(0, 0.6) * spread, -0.1 * pw, width + 0.1 * pw))
    return Sprite(cid, patch, int(cx - pw / 2), int(base - ph), box, base)


def _composite(image: np.ndarray, owner: np.ndarray, sprite: Sprite, index: int) -> int:
    """Pastes a sprite over the image; returns its labelled-part pixel count inside the image."""
    h, w = image.shape[:2]
    ph, pw = sprite.patch.shape[:2]
    x0, y0 = max(sprite.x0, 0), max(sprite.y0, 0)
    x1, y1 = min(sprite.x0 + pw, w), min(sprite.y0 + ph, h)
    if x1 <= x0 or y1 <= y0:
        return 0
    mask = paste(image, sprite.patch, sprite.x0, sprite.y0)
    owner[y0:y1, x0:x1][mask] = index
    bx0, by0, bx1, by1 = _image_box(sprite, w, h)
    if bx1 <= bx0 or by1 <= by0:
        return 0
    part = sprite.patch[by0 - sprite.y0:by1 - sprite.y0, bx0 - sprite.x0:bx1 - sprite.x0, 3]
    return int(np.count_nonzero(part))


def paste(image: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """Draws an RGBA object patch over ``image`` with its top-left corner at (x, y).

    Only the object's own pixels (alpha > 0) are drawn, so the background shows around it, as
    in the training scenes. Returns the drawn mask of the part inside the image (empty if none).
    """
    h, w = image.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), bool)
    local = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    mask = local[..., 3] > 0
    image[y0:y1, x0:x1][mask] = local[..., :3][mask]
    return mask


def draw_object(rng: np.random.Generator, class_id: int, width: int,
                height: int) -> np.ndarray:
    """One object of class ``class_id`` (not a traffic light), drawn as ``render_scene``
    draws it: a ``height`` x ``width`` RGBA patch (alpha 255 on the object, 0 around it),
    facing right; flip it (``patch[:, ::-1]``) to face left."""
    return _DRAW[class_id](rng, width, height)


def _image_box(sprite: Sprite, width: int, height: int) -> tuple[int, int, int, int]:
    """The sprite's labelled part in image pixels, clipped to the image."""
    bx0, by0, bx1, by1 = sprite.box
    return (max(sprite.x0 + bx0, 0), max(sprite.y0 + by0, 0),
            min(sprite.x0 + bx1, width), min(sprite.y0 + by1, height))


def _visible_boxes(sprites: list[Sprite], owner: np.ndarray, totals: list[int], width: int,
                   height: int) -> tuple[np.ndarray, np.ndarray]:
    """Keeps objects that are big enough and not mostly hidden by nearer ones."""
    boxes, classes = [], []
    for index, (sprite, total) in enumerate(zip(sprites, totals, strict=True)):
        x0, y0, x1, y1 = _image_box(sprite, width, height)
        if total == 0 or x1 - x0 < _MIN_BOX_PX or y1 - y0 < _MIN_BOX_PX:
            continue
        visible = np.count_nonzero(owner[y0:y1, x0:x1] == index)
        if visible < (1.0 - _MAX_VISIBLE_HIDDEN) * total:
            continue
        boxes.append((x0, y0, x1, y1))
        classes.append(sprite.class_id)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64))


# --- objects (side views, drawn facing right in a w x h RGBA patch) ----------------------


def _canvas(w: int, h: int) -> np.ndarray:
    return np.zeros((h, w, 4), np.uint8)


def _c(color: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return (*color, 255)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def _wheels(p: np.ndarray, xs: list[float], cy: float, r: float, *, thin: bool = False) -> None:
    r = max(1, int(round(r)))
    for x in xs:
        if thin:
            cv2.circle(p, _pt(x, cy), r, _c((25, 25, 25)), max(1, r // 6))
        else:
            cv2.circle(p, _pt(x, cy), r, _c((20, 20, 20)), -1)
            cv2.circle(p, _pt(x, cy), max(1, r // 2), _c((150, 150, 150)), -1)


def _car(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    body, glass = _color(rng), _color(rng, 40, 120)
    r = 0.19 * h
    _fill(p, [(0.0, 0.45 * h), (0.03 * w, 0.35 * h), (0.97 * w, 0.38 * h), (w - 1, 0.5 * h),
              (w - 1, h - r), (0, h - r)], _c(body))
    _fill(p, [(0.2 * w, 0.4 * h), (0.3 * w, 0), (0.62 * w, 0), (0.78 * w, 0.4 * h)], _c(body))
    _fill(p, [(0.25 * w, 0.37 * h), (0.32 * w, 0.1 * h), (0.6 * w, 0.1 * h),
              (0.72 * w, 0.37 * h)], _c(glass))
    _wheels(p, [0.2 * w, 0.8 * w], h - 1 - r, r)
    return p


def _truck(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    box, cab = _color(rng, 60), _color(rng)
    r = 0.12 * h
    cv2.rectangle(p, (0, 0), _pt(0.76 * w, h - 1.6 * r), _c(box), -1)
    _fill(p, [(0.78 * w, 0.3 * h), (0.93 * w, 0.3 * h), (w - 1, 0.55 * h), (w - 1, h - r),
              (0.78 * w, h - r)], _c(cab))
    _fill(p, [(0.82 * w, 0.36 * h), (0.92 * w, 0.36 * h), (0.97 * w, 0.52 * h),
              (0.82 * w, 0.52 * h)], _c((90, 70, 50)))
    cv2.rectangle(p, _pt(0, h - 1.8 * r), _pt(w - 1, h - 1.2 * r), _c((40, 40, 40)), -1)
    _wheels(p, [0.12 * w, 0.26 * w, 0.86 * w], h - 1 - r, r)
    return p


def _bus(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    body = _color(rng, 40)
    r = 0.12 * h
    cv2.rectangle(p, (0, 0), _pt(w - 1, h - r), _c(body), -1)
    glass = _c(_color(rng, 20, 90))
    n = int(rng.integers(5, 9))
    step = 0.86 * w / n
    for k in range(n):  # the row of windows is what tells a bus from a truck
        x = 0.04 * w + k * step
        cv2.rectangle(p, _pt(x, 0.14 * h), _pt(x + 0.8 * step, 0.48 * h), glass, -1)
    cv2.rectangle(p, _pt(0.92 * w, 0.14 * h), _pt(0.98 * w, 0.8 * h), glass, -1)  # door
    cv2.line(p, _pt(0, 0.62 * h), _pt(w - 1, 0.62 * h), _c(_color(rng)), max(1, int(0.05 * h)))
    _wheels(p, [0.16 * w, 0.8 * w], h - 1 - r, r)
    return p


def _motorcycle(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    r = 0.2 * h
    cy = h - 1 - r
    frame, rider = _color(rng, 0, 200), _color(rng, 0, 160)
    _fill(p, [(0.22 * w, cy - 0.2 * r), (0.35 * w, 0.52 * h), (0.7 * w, 0.5 * h),
              (0.8 * w, cy - 0.3 * r), (0.55 * w, cy + 0.3 * r)], _c(frame))
    _wheels(p, [0.2 * w, 0.8 * w], cy, r)
    t = max(1, int(0.09 * h))
    cv2.line(p, _pt(0.45 * w, 0.5 * h), _pt(0.5 * w, 0.2 * h), _c(rider), 2 * t)  # torso
    cv2.line(p, _pt(0.45 * w, 0.5 * h), _pt(0.62 * w, 0.65 * h), _c(rider), t)  # leg
    cv2.line(p, _pt(0.5 * w, 0.25 * h), _pt(0.75 * w, 0.38 * h), _c(rider), t)  # arm
    cv2.circle(p, _pt(0.53 * w, 0.1 * h), max(1, int(0.1 * h)), _c(_color(rng)), -1)  # helmet
    return p


def _bicycle(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    r = 0.34 * h
    cy = h - 1 - r
    color = _c(_color(rng, 0, 220))
    t = max(1, int(0.05 * h))
    rear, front = (0.2 * w, cy), (0.8 * w, cy)
    crank, seat, head = (0.45 * w, cy), (0.38 * w, 0.15 * h), (0.72 * w, 0.18 * h)
    for a, b in [(rear, crank), (crank, seat), (seat, rear), (seat, head), (crank, head),
                 (head, front)]:
        cv2.line(p, _pt(*a), _pt(*b), color, t)
    cv2.line(p, _pt(0.3 * w, 0.08 * h), _pt(0.44 * w, 0.08 * h), _c((20, 20, 20)), t + 1)
    cv2.line(p, _pt(0.7 * w, 0), _pt(0.78 * w, 0.03 * h), _c((20, 20, 20)), t)
    _wheels(p, [rear[0], front[0]], cy, r, thin=True)
    return p


def _pedestrian(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    p = _canvas(w, h)
    skin = _c(tuple(int(v) for v in rng.integers(60, 230) * np.array([0.6, 0.75, 1.0])))
    top, legs = _c(_color(rng)), _c(_color(rng, 0, 180))
    hr = max(1, int(min(0.11 * h, 0.45 * w)))
    cv2.circle(p, _pt(w / 2, hr), hr, skin, -1)
    cv2.rectangle(p, _pt(0.18 * w, 2 * hr), _pt(0.82 * w, 0.58 * h), top, -1)
    t = max(1, int(0.22 * w))
    stride = rng.uniform(0.0, 0.3) * w
    cv2.line(p, _pt(0.4 * w, 0.56 * h), _pt(0.4 * w - stride, h - 1 - t / 2), legs, t)
    cv2.line(p, _pt(0.6 * w, 0.56 * h), _pt(0.6 * w + stride, h - 1 - t / 2), legs, t)
    at = max(1, t // 2 + 1)
    cv2.line(p, _pt(0.2 * w, 2.4 * hr), _pt(0.05 * w + at / 2, 0.5 * h), top, at)
    cv2.line(p, _pt(0.8 * w, 2.4 * hr), _pt(0.95 * w - at / 2, 0.5 * h), top, at)
    return p


def _traffic_light(rng: np.random.Generator, w: int, h: int,
                   ppm: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A lamp housing on a pole; only the housing is labelled (as COCO labels them)."""
    pole = max(2, int(rng.uniform(2.0, 3.2) * ppm))
    p = _canvas(w, h + pole)
    cv2.rectangle(p, _pt(w / 2 - max(1, 0.08 * w), h), _pt(w / 2 + max(1, 0.08 * w), h + pole),
                  _c((70, 70, 70)), -1)
    cv2.rectangle(p, (0, 0), (w - 1, h - 1), _c(_color(rng, 10, 50)), -1)
    lit = int(rng.integers(0, 3))
    on = [(60, 60, 255), (40, 200, 255), (120, 255, 80)]  # red, amber, green (BGR)
    r = max(1, int(min(0.36 * w, 0.13 * h)))
    for k in range(3):
        color = on[k] if k == lit else tuple(int(c * 0.25) for c in on[k])
        cv2.circle(p, _pt(w / 2, h * (0.18 + 0.32 * k)), r, _c(color), -1)
    return p, (0, 0, w, h)


_DRAW = {CAR: _car, TRUCK: _truck, BUS: _bus, MOTORCYCLE: _motorcycle, BICYCLE: _bicycle,
         PEDESTRIAN: _pedestrian}
