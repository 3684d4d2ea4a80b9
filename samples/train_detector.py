"""Trains edgekit's shipped detectors on synthetic road scenes, on CPU, in resumable stages.

One loop serves every shipped model (``--model sample|reference``, presets below): scenes from
``edgekit.data.synth.render_scene``, rendered on the fly (a few ms each, about 1% of a step) with
seeds disjoint from the validation set, through exactly the inference preprocessing
(``edgekit.preprocess``, the model's ``InputSpec``); YOLOv8's task-aligned assigner and losses;
AdamW with a warm-up + cosine schedule over the whole planned run, counted in steps.

Cheap on CPU: a stage may train on ``crop x crop`` windows of the scene letterboxed to the
model's input size. The network is fully convolutional, so a 320 crop of the 640 input costs a
quarter of a 640 step while objects keep the scale they have at inference; the last stage
trains on the full input (borders, padding, context).

Resumable: model, EMA, optimizer, step and history live in ``--state`` (default
``~/.cache/edgekit/train/MODEL``), saved every few minutes and on exit (Ctrl-C / SIGTERM too).
Each run trains for ``--minutes`` (or to the end of the schedule), then measures COCO mAP of the
EMA weights on the held-out set (seed 12345, 300 images, rendered once into the state folder)
at the model's input size, and writes the best weights so far (fp16) to ``--out``.

Example:
    python samples/train_detector.py --model reference --minutes 30   # repeat until done
    python samples/train_detector.py --model sample --fresh --minutes 18
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import sys
import time
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from edgekit.bundle import InputSpec, OutputSpec  # noqa: E402
from edgekit.data.synth import LABELS, render_scene, write_dataset  # noqa: E402
from edgekit.postprocess import postprocess  # noqa: E402
from edgekit.preprocess import resize_image, to_tensor  # noqa: E402

try:
    from edgekit.export.models.checkpoint import build_model, load_checkpoint
    from edgekit.export.shipped import SHIPPED
except ImportError:  # a checkout without `pip install -e .`: export/ is not edgekit.export yet
    from export.models.checkpoint import build_model, load_checkpoint
    from export.shipped import SHIPPED

VAL_SEED, VAL_COUNT, VAL_SIZE = 12345, 300, (512, 384)
EVAL_SPEC = OutputSpec(conf_threshold=0.001, iou_threshold=0.6, max_detections=300)
# Loss gains and assigner settings from YOLOv8 (box 7.5, cls 0.5, dfl 1.5; TAL top-10,
# alpha 0.5, beta 6), which train well from scratch.
BOX_GAIN, CLS_GAIN, DFL_GAIN = 7.5, 0.5, 1.5
TOPK, ALPHA, BETA = 10, 0.5, 6.0
MIN_KEPT = 0.4  # a box cut by a crop keeps its label if this share of its area is inside
FOCUS = 0.75  # share of crop windows centred near an object
SAVE_EVERY_S = 300.0


@dataclass(frozen=True, kw_only=True)
class Preset:
    """How one shipped model is built and trained.

    Attributes:
        arch: Architecture name and arguments (a checkpoint ``config``, imgsz included).
        schedule: ``((crop, steps), ...)``: stages in order; crop == imgsz is the full input.
        batch, lr, weight_decay: Optimiser settings; warmup: fraction of all steps.
        ema_decay, ema_tau: Weight averaging: a window of about 1 / (1 - decay) steps,
            reached after a few tau (short CPU runs need a short window).
    """

    arch: dict[str, Any]
    schedule: tuple[tuple[int, int], ...]
    batch: int = 16
    lr: float = 8e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    ema_decay: float = 0.999
    ema_tau: float = 400.0


PRESETS: dict[str, Preset] = {
    # 447 k parameters at 320: the whole input every step.
    "sample": Preset(arch={"arch": "YoloLite", "width": 0.5, "imgsz": 320},
                     schedule=((320, 1500),)),
    # YOLOv8n-class at 640: 224 crops (an eighth of a 640 step) first, 416 crops, the full
    # input last (the shipped weights: mAP@0.5:0.95 0.774 after 53 min of bf16 steps on AMX);
    # small batches, as more updates buy more than larger batches at this compute.
    "reference": Preset(arch={"arch": "YoloV8", "width": 0.25, "depth": 0.33, "reg_max": 16,
                              "imgsz": 640},
                        schedule=((224, 8000), (416, 1500), (640, 150)), batch=8, lr=3e-3,
                        ema_decay=0.99, ema_tau=50.0),
}


# --- data --------------------------------------------------------------------------------


def make_sample(rng: np.random.Generator, spec: InputSpec,
                crop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training scene as (tensor [3,crop,crop], boxes in its pixels [N,4], classes [N]).

    The scene goes through the inference letterbox to the full input size first, so a crop
    shows objects at their inference scale.
    """
    image, boxes, classes = render_scene(rng, width=VAL_SIZE[0], height=VAL_SIZE[1])
    resized, box = resize_image(image, spec)
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2] * box.scale_x + box.pad_x
    boxes[:, 1::2] = boxes[:, 1::2] * box.scale_y + box.pad_y
    if rng.random() < 0.5:  # horizontal flip: scenes are left/right symmetric
        resized = resized[:, ::-1]
        boxes[:, [0, 2]] = spec.width - boxes[:, [2, 0]]
    if crop < spec.width or crop < spec.height:
        x0, y0 = _crop_origin(rng, boxes, spec, crop)
        resized = resized[y0 : y0 + crop, x0 : x0 + crop]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = (boxes - np.array([x0, y0, x0, y0], np.float32)).clip(0, crop)
        kept = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = (kept >= MIN_KEPT * area) & (boxes[:, 2] - boxes[:, 0] >= 2) & \
            (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes, classes = boxes[keep], classes[keep]
    return to_tensor(np.ascontiguousarray(resized), spec)[0], boxes, classes


def _crop_origin(rng: np.random.Generator, boxes: np.ndarray, spec: InputSpec,
                 crop: int) -> tuple[int, int]:
    """Top-left corner of a crop window: most windows hold a random object's centre (a small
    window placed uniformly would mostly show road and sky), the rest fall anywhere."""
    if len(boxes) and rng.random() < FOCUS:
        x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))]
        cx = (x0 + x1) / 2 - rng.uniform(0.15, 0.85) * crop
        cy = (y0 + y1) / 2 - rng.uniform(0.15, 0.85) * crop
        return (int(np.clip(cx, 0, spec.width - crop)), int(np.clip(cy, 0, spec.height - crop)))
    return (int(rng.integers(0, spec.width - crop + 1)),
            int(rng.integers(0, spec.height - crop + 1)))


def make_batch(seed: int, step: int, size: int, spec: InputSpec,
               crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch with ground truth padded to the batch's max object count.

    Returns:
        images [B,3,crop,crop], gt boxes [B,M,4] xyxy pixels, gt classes [B,M] (-1 = padding).
    """
    # Three-part entropy [seed, step, j]: never equal to a validation image's [12345, i].
    samples = [make_sample(np.random.default_rng([seed, step, j]), spec, crop)
               for j in range(size)]
    m = max(1, max(len(s[2]) for s in samples))
    boxes = np.zeros((size, m, 4), np.float32)
    classes = np.full((size, m), -1, np.int64)
    for j, (_, b, c) in enumerate(samples):
        boxes[j, : len(c)], classes[j, : len(c)] = b, c
    images = torch.from_numpy(np.stack([s[0] for s in samples]))
    return images, torch.from_numpy(boxes), torch.from_numpy(classes)


# --- assignment and loss -----------------------------------------------------------------


def box_iou(a: torch.Tensor, b: torch.Tensor, *, ciou: bool = False,
            eps: float = 1e-7) -> torch.Tensor:
    """Element-wise IoU (or CIoU) of xyxy boxes with broadcastable shapes [..., 4]."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(0)
    inter = iw * ih
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iou = inter / (wa * ha + wb * hb - inter + eps)
    if not ciou:
        return iou
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw**2 + ch**2 + eps
    rho2 = ((a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2
            + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / (hb + eps)) - torch.atan(wa / (ha + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def assign(scores: torch.Tensor, boxes: torch.Tensor, anchors: torch.Tensor,
           strides: torch.Tensor, gt_boxes: torch.Tensor,
           gt_classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task-aligned assignment (TOOD / YOLOv8) with a centre-cell fallback for tiny objects.

    Args:
        scores: Predicted sigmoid scores [B, N, C].
        boxes: Predicted xyxy boxes [B, N, 4].
        anchors: Anchor points [N, 2]; strides: [N].
        gt_boxes: [B, M, 4]; gt_classes: [B, M], -1 for padding.

    Returns:
        fg mask [B, N], target boxes [B, N, 4], IoU-aware target scores [B, N, C].
    """
    b, n, c = scores.shape
    valid = gt_classes >= 0  # [B, M]
    ax, ay = anchors[:, 0].view(1, 1, n), anchors[:, 1].view(1, 1, n)
    x0, y0, x1, y1 = (gt_boxes[..., k : k + 1] for k in range(4))  # [B, M, 1]
    inside = (ax > x0) & (ax < x1) & (ay > y0) & (ay < y1)
    # The cell holding the box centre on every level, so a box smaller than a stride (a far
    # pedestrian is ~3 px wide at 320) still gets candidates.
    half = strides.view(1, 1, n) / 2
    centre = ((ax - (x0 + x1) / 2).abs() <= half) & ((ay - (y0 + y1) / 2).abs() <= half)
    candidate = (inside | centre) & valid[..., None]  # [B, M, N]

    cls_idx = gt_classes.clamp(min=0)
    gt_score = torch.gather(scores.transpose(1, 2), 1,
                            cls_idx[..., None].expand(-1, -1, n))  # [B, M, N]
    iou = box_iou(gt_boxes[:, :, None], boxes[:, None]).clamp(0) * candidate
    align = gt_score.pow(ALPHA) * iou.pow(BETA) * candidate
    top = align.topk(min(TOPK, n), dim=-1).indices
    pos = torch.zeros_like(candidate).scatter_(-1, top, True) & candidate & (align > 0)
    # Fallback when every candidate's alignment is 0 (early training): keep the candidates.
    none = ~pos.any(-1, keepdim=True)
    pos = torch.where(none, candidate, pos)

    # One GT per anchor: the one it overlaps most.
    multi = pos.sum(1, keepdim=True) > 1  # [B, 1, N]
    best = F.one_hot(iou.argmax(1), gt_boxes.shape[1]).permute(0, 2, 1).bool()
    pos = torch.where(multi, best & pos, pos)
    fg = pos.any(1)  # [B, N]
    gt_idx = pos.float().argmax(1)  # [B, N]

    target_boxes = torch.gather(gt_boxes, 1, gt_idx[..., None].expand(-1, -1, 4))
    target_cls = torch.gather(cls_idx, 1, gt_idx)
    align = align * pos
    norm = (align * iou.amax(-1, keepdim=True)
            / (align.amax(-1, keepdim=True) + 1e-9)).amax(1)  # [B, N]
    target_scores = F.one_hot(target_cls, c).float() * (norm * fg)[..., None]
    return fg, target_boxes, target_scores


def dfl_loss(box_raw: torch.Tensor, fg: torch.Tensor, target_ltrb: torch.Tensor,
             reg_max: int) -> torch.Tensor:
    """Distribution Focal Loss per foreground anchor [F]: cross-entropy of each side's bin
    histogram against the two bins around the target distance, weighted by proximity.

    Args:
        box_raw: Box logits [B, 4 * reg_max, N]; fg: [B, N]; target_ltrb: [F, 4] in strides.
    """
    b, _, n = box_raw.shape
    logits = box_raw.reshape(b, 4, reg_max, n).permute(0, 3, 1, 2)[fg]  # [F, 4, R]
    target = target_ltrb.clamp(0, reg_max - 1.01)
    left = target.long()
    w_left = left.float() + 1 - target
    log_p = logits.log_softmax(-1)
    loss = -(log_p.gather(-1, left[..., None])[..., 0] * w_left
             + log_p.gather(-1, left[..., None] + 1)[..., 0] * (1 - w_left))
    return loss.mean(-1)


def compute_loss(model: nn.Module, images: torch.Tensor, gt_boxes: torch.Tensor,
                 gt_classes: torch.Tensor, *,
                 bf16: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """YOLOv8-style loss: BCE on IoU-aware class targets + CIoU on assigned anchors, plus DFL
    for models whose decode reads box histograms (``decode.reg_max``).

    ``bf16`` runs the network (not the assigner or the loss) under CPU bf16 autocast.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        box_raw, cls_raw = model.forward_raw(images)
    box_raw, cls_raw = box_raw.float(), cls_raw.float()
    decode = model.decode
    d = decode.ltrb(box_raw)  # [B, 4, N]
    anchors = decode.anchors[0].T  # [N, 2]
    pred = torch.cat((anchors[None] - d[:, :2].transpose(1, 2),
                      anchors[None] + d[:, 2:].transpose(1, 2)), -1)  # [B, N, 4]
    logits = cls_raw.transpose(1, 2)  # [B, N, C]
    fg, target_boxes, target_scores = assign(logits.detach().sigmoid(), pred.detach(), anchors,
                                             decode.strides[0, 0], gt_boxes, gt_classes)
    total = target_scores.sum().clamp(min=1.0)
    cls_loss = F.binary_cross_entropy_with_logits(logits, target_scores,
                                                  reduction="sum") / total
    reg_max = getattr(decode, "reg_max", None)
    zero = pred.sum() * 0.0
    box_loss, dfl = zero, zero
    if fg.any():
        weight = target_scores.sum(-1)[fg]
        ciou = box_iou(pred[fg], target_boxes[fg], ciou=True)
        box_loss = ((1.0 - ciou) * weight).sum() / total
        if reg_max:
            stride = decode.strides[0, 0][None, :, None].expand_as(pred)[fg]  # [F, 4]
            xy = anchors[None].expand(pred.shape[0], -1, -1)[fg]  # [F, 2]
            t = target_boxes[fg]
            ltrb = torch.cat((xy - t[:, :2], t[:, 2:] - xy), -1) / stride
            dfl = (dfl_loss(box_raw, fg, ltrb, reg_max) * weight).sum() / total
    loss = BOX_GAIN * box_loss + CLS_GAIN * cls_loss + DFL_GAIN * dfl
    parts = {"box": float(box_loss.detach()), "cls": float(cls_loss.detach()),
             "dfl": float(dfl.detach())}
    return loss * images.shape[0], parts


# --- training ----------------------------------------------------------------------------


class SceneStream(torch.utils.data.IterableDataset):
    """Endless batches ``make_batch(seed, step, ...)`` for step = start, start + 1, ...

    Run in one DataLoader worker (``--workers 1``) so rendering overlaps the forward/backward
    pass, which pays for the small sample; a single worker keeps the batch order deterministic.
    """

    def __init__(self, seed: int, batch: int, spec: InputSpec, crop: int, start: int) -> None:
        super().__init__()
        self.seed, self.batch, self.spec, self.crop, self.start = seed, batch, spec, crop, start

    def __iter__(self):
        cv2.setNumThreads(1)
        step = self.start
        while True:
            yield make_batch(self.seed, step, self.batch, self.spec, self.crop)
            step += 1


def batches(stream: SceneStream, workers: int):
    """Training batches, rendered in a worker process unless ``workers`` is 0."""
    if workers == 0:
        return iter(stream)
    return iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                            prefetch_factor=4))


class EMA:
    """Exponential moving average of weights (and BN buffers), with Ultralytics' warm-up ramp."""

    def __init__(self, model: nn.Module, *, decay: float = 0.999, tau: float = 400.0) -> None:
        self.model = deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on BatchNorm and biases (it only shrinks their useful range)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            (no_decay if name == "bias" or isinstance(module, nn.BatchNorm2d) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up, then cosine decay to 5% over the whole planned run."""
    if progress < warmup:
        return 0.05 + 0.95 * progress / warmup
    t = (progress - warmup) / max(1e-9, 1 - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def parse_schedule(text: str) -> tuple[tuple[int, int], ...]:
    """``"320:2400,640:400"`` -> ((320, 2400), (640, 400))."""
    try:
        stages = tuple((int(c), int(n)) for c, n in (part.split(":") for part in
                                                       text.split(",")))
    except ValueError:
        raise SystemExit(f"--schedule {text!r}: expected CROP:STEPS[,CROP:STEPS...], "
                         "e.g. 320:2400,640:400") from None
    if not stages or any(c % 32 or n < 0 for c, n in stages):
        raise SystemExit(f"--schedule {text!r}: crops must be multiples of 32, steps >= 0.")
    return stages


def crop_at(schedule: tuple[tuple[int, int], ...], step: int) -> int | None:
    """The stage's crop size at ``step``, or None once the schedule is done."""
    for crop, steps in schedule:
        if step < steps:
            return crop
        step -= steps
    return None


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through a temporary file: a kill mid-write never loses the last state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Training:
    """Model, EMA, optimiser and counters of one resumable run, saved in ``state/state.pt``."""

    def __init__(self, args: argparse.Namespace, preset: Preset) -> None:
        self.args, self.preset = args, preset
        self.config = {**preset.arch, "num_classes": len(LABELS)}
        self.imgsz = int(self.config["imgsz"])
        self.spec = InputSpec(shape=(1, 3, self.imgsz, self.imgsz))
        self.file = args.state / "state.pt"
        torch.manual_seed(args.seed)
        self.model = build_model(self.config)
        saved = None
        if self.file.is_file() and not args.fresh:
            saved = torch.load(self.file, map_location="cpu", weights_only=True)
            if saved["config"] != self.config:
                raise SystemExit(f"{self.file} holds a run of {saved['config']}, not "
                                 f"{self.config}: pass --fresh to start over, or another "
                                 "--state.")
            self.model.load_state_dict(saved["model"])
        elif args.init is not None:  # start from earlier weights (use another --seed)
            self.model.load_state_dict(load_checkpoint(args.init).state_dict())
        self.schedule = (parse_schedule(args.schedule) if args.schedule else
                         tuple(map(tuple, saved["schedule"])) if saved else preset.schedule)
        self.opt = torch.optim.AdamW(param_groups(self.model, preset.weight_decay),
                                     lr=preset.lr, betas=(0.9, 0.999))
        self.ema = EMA(self.model, decay=preset.ema_decay, tau=preset.ema_tau)
        self.step, self.history, self.stages = 0, [], {}
        if saved:
            self.ema.model.load_state_dict(saved["ema"])
            self.ema.updates = int(saved["ema_updates"])
            self.opt.load_state_dict(saved["opt"])
            self.step, self.history = int(saved["step"]), list(saved["history"])
            self.stages = {int(k): dict(v) for k, v in saved["stages"].items()}
            print(f"resumed {self.file} at step {self.step}", flush=True)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.schedule)

    def save(self) -> None:
        save_atomic({"config": self.config, "schedule": [list(s) for s in self.schedule],
                     "model": self.model.state_dict(), "ema": self.ema.model.state_dict(),
                     "ema_updates": self.ema.updates, "opt": self.opt.state_dict(),
                     "step": self.step, "history": self.history,
                     "stages": {str(k): v for k, v in self.stages.items()}}, self.file)

    def run(self, minutes: float) -> None:
        """Trains until the schedule ends, ``minutes`` pass, or SIGTERM/Ctrl-C; then saves."""
        args, preset = self.args, self.preset
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
        start = last_save = time.perf_counter()
        crop_now, stream, t_data, done = None, None, 0.0, 0
        try:
            while not stop and (crop := crop_at(self.schedule, self.step)) is not None:
                elapsed = time.perf_counter() - start
                if elapsed >= minutes * 60:
                    break
                if crop != crop_now:  # a new stage: the anchor grid follows the input size
                    self.model.set_imgsz(crop)
                    self.ema.model.set_imgsz(crop)
                    stream = batches(SceneStream(args.seed, preset.batch, self.spec, crop,
                                                 self.step), args.workers)
                    crop_now = crop
                    print(f"stage: {crop}x{crop} inputs from step {self.step} of "
                          f"{self.total}", flush=True)
                factor = lr_factor(self.step / max(1, self.total), preset.warmup)
                for group in self.opt.param_groups:
                    group["lr"] = preset.lr * factor
                t0 = time.perf_counter()
                images, gt_boxes, gt_classes = next(stream)
                t_data += time.perf_counter() - t0
                self.model.train()
                loss, parts = compute_loss(self.model, images, gt_boxes, gt_classes,
                                           bf16=args.bf16)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
                self.opt.step()
                self.ema.update(self.model)
                step_s = time.perf_counter() - t0
                self.step, done = self.step + 1, done + 1
                stage = self.stages.setdefault(crop, {"steps": 0, "images": 0, "seconds": 0.0})
                stage["steps"] += 1
                stage["images"] += preset.batch
                stage["seconds"] = round(stage["seconds"] + step_s, 1)
                if self.step % args.log_every == 0:
                    print(f"step {self.step}/{self.total} {crop}px {elapsed / 60:5.1f} min  "
                          f"img/s {done * preset.batch / max(elapsed, 1e-9):5.2f}  "
                          f"data {t_data / max(elapsed, 1e-9):4.0%}  "
                          f"lr {self.opt.param_groups[0]['lr']:.2e}  box {parts['box']:.3f} "
                          f"cls {parts['cls']:.3f} dfl {parts['dfl']:.3f}", flush=True)
                if time.perf_counter() - last_save > SAVE_EVERY_S:
                    self.save()
                    last_save = time.perf_counter()
        except KeyboardInterrupt:
            stop.append("interrupt")
        self.save()
        reason = ", ".join(stop) or ("end of schedule" if self.step >= self.total else
                                     "time budget")
        print(f"stopped at step {self.step}/{self.total} ({reason}); "
              f"this run: {done} steps in {(time.perf_counter() - start) / 60:.1f} min; "
              f"state saved to {self.file}", flush=True)

    def deploy_model(self) -> nn.Module:
        """The EMA weights at the model's input size, fp16-rounded as they ship."""
        model = deepcopy(self.ema.model).eval()
        model.set_imgsz(self.imgsz)
        return model


# --- evaluation --------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, root: Path, *, imgsz: int) -> dict[str, float | dict]:
    """COCO mAP on the validation set written by ``write_dataset`` (JPEG files, as users have).

    Returns:
        ``mAP50``, ``mAP50_95`` and per-class AP at both thresholds.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    spec = InputSpec(shape=(1, 3, imgsz, imgsz))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "annotations.json"))
    results = []
    model.eval()
    for info in gt.dataset["images"]:
        image = cv2.imread(str(root / "images" / info["file_name"]))
        resized, box = resize_image(image, spec)
        output = model(torch.from_numpy(to_tensor(resized, spec))).numpy()
        det = postprocess(output, EVAL_SPEC, box, info["width"], info["height"])
        for (x0, y0, x1, y1), score, cid in zip(det.xyxy.tolist(), det.confidence.tolist(),
                                                det.class_id.tolist(), strict=True):
            results.append({"image_id": info["id"], "category_id": cid + 1,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    if not results:
        return {"mAP50": 0.0, "mAP50_95": 0.0, "per_class": {}}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes(results), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area all, maxDets 100
    per_class = {}
    for k, name in enumerate(LABELS):
        p = precision[:, :, k]
        ap = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
        ap50 = float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else float("nan")
        per_class[name] = {"AP50": round(ap50, 4), "AP50_95": round(ap, 4)}
    return {"mAP50": round(float(coco_eval.stats[1]), 4),
            "mAP50_95": round(float(coco_eval.stats[0]), 4), "per_class": per_class}


def half_roundtrip(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fp16 state dict to ship, loaded back into ``model`` so metrics describe it."""
    state = {k: (v.half() if v.dtype.is_floating_point else v)
             for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.dtype.is_floating_point else v
                           for k, v in state.items()})
    return state


def validation_set(state_dir: Path, count: int) -> Path:
    """The held-out scenes, rendered once per state folder (JPEG files, as users have)."""
    root = state_dir / f"val-{VAL_SEED}-{count}"
    if not (root / "annotations.json").is_file():
        write_dataset(root, count=count, seed=VAL_SEED, width=VAL_SIZE[0], height=VAL_SIZE[1])
    return root


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PRESETS), default="sample")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="training time of this run (the schedule continues next run)")
    parser.add_argument("--state", type=Path, default=None,
                        help="resumable state folder (default ~/.cache/edgekit/train/MODEL)")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved state, start over")
    parser.add_argument("--schedule", default=None,
                        help="CROP:STEPS stages, e.g. 320:2400,640:400 (default: the preset's "
                             "or the saved run's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="shipped weights, written when a run's mAP beats the best so far "
                             "(default: edgekit/sample/<the model's file> in this checkout)")
    parser.add_argument("--seed", type=int, default=0, help="training data and init seed")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a fresh run from this checkpoint's weights")
    parser.add_argument("--val-count", type=int, default=VAL_COUNT)
    parser.add_argument("--no-eval", action="store_true", help="train and save state only")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (1 wastes less on a machine busy with other work)")
    parser.add_argument("--workers", type=int, default=0, help="scene-rendering processes")
    # Measured on a Xeon with AMX, reference model, batch 8, 2 threads: a 224 step 0.21 s in
    # fp32, 0.14 s in bf16; 320: 0.36 -> 0.22 s. Without AVX512-BF16/AMX it is slower.
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast for the network's forward and backward (1.5x "
                             "faster steps on CPUs with AMX or AVX512-BF16; weights, "
                             "optimizer, assigner and loss stay fp32)")
    args = parser.parse_args(argv)
    if args.seed == VAL_SEED:
        parser.error(f"--seed {VAL_SEED} is the validation seed; pick another.")
    args.state = (args.state or Path.home() / ".cache" / "edgekit" / "train" / args.model)
    args.out = args.out or ROOT / "edgekit" / "sample" / SHIPPED[args.model].filename
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)  # one scene at a time; torch owns the cores
    preset = PRESETS[args.model]
    training = Training(args, preset)
    n_params = sum(p.numel() for p in training.model.parameters())
    print(f"{args.model}: {training.config['arch']} {n_params / 1e6:.3f} M parameters, "
          f"{training.imgsz}x{training.imgsz}, schedule {training.schedule}", flush=True)
    training.run(args.minutes)
    if args.no_eval:
        return
    model = training.deploy_model()
    state = half_roundtrip(model)
    t0 = time.perf_counter()
    metrics = evaluate(model, validation_set(args.state, args.val_count), imgsz=training.imgsz)
    stages = {f"{crop}px": v for crop, v in sorted(training.stages.items())}
    metrics.update({"val_seed": VAL_SEED, "val_images": args.val_count, "step": training.step,
                    "eval_seconds": round(time.perf_counter() - t0)})
    print(json.dumps(metrics, indent=2))
    print(f"step {training.step}/{training.total}: mAP@0.5 {metrics['mAP50']:.4f}  "
          f"mAP@0.5:0.95 {metrics['mAP50_95']:.4f}  trained {stages}", flush=True)
    best = max((h["mAP50_95"] for h in training.history if h["val_images"] == args.val_count),
               default=-1.0)
    training.history.append({"step": training.step, "mAP50": metrics["mAP50"],
                             "mAP50_95": metrics["mAP50_95"], "val_images": args.val_count,
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    training.save()
    if metrics["mAP50_95"] <= best:
        print(f"not better than the best so far ({best:.4f}); {args.out} unchanged")
        return
    config = {**training.config, "labels": list(LABELS),
              "input": {"shape": [1, 3, training.imgsz, training.imgsz], "color": "rgb",
                        "letterbox": True, "pad_value": 114, "scale": "1/255"},
              "output": "yolov8: [1, 4 + nc, N], cx cy w h input pixels, sigmoid scores",
              "train": {"seed": args.seed, "batch": preset.batch, "lr": preset.lr,
                        "schedule": [list(s) for s in training.schedule], "stages": stages,
                        "init": str(args.init) if args.init else None}}
    checkpoint = {"state_dict": state, "config": config, "metrics": metrics}
    save_atomic(checkpoint, args.state / "best.pt")
    save_atomic(checkpoint, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
