"""Trains the edgekit sample detector (YoloLite, 7 road classes) on synthetic scenes, on CPU.

Scenes come from ``edgekit.data.synth.render_scene``, rendered on the fly (about 4 ms each, far
less than a training step) with seeds disjoint from the validation set, and go through exactly
the inference preprocessing (``edgekit.preprocess`` with the default ``InputSpec``). Training
is time-budgeted; at the end the script measures COCO mAP on a held-out set (seed 12345, 300
images) with the same postprocessing every backend uses, and saves the weights with the
config and the measured metrics.

Example:
    python samples/train_sample_detector.py --minutes 18 --out edgekit/sample/sample_detector.pt
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

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
    from edgekit.export.models.yolo_lite import YoloLite, load_checkpoint
except ImportError:  # a checkout without `pip install -e .`: export/ is not edgekit.export yet
    from export.models.yolo_lite import YoloLite, load_checkpoint

VAL_SEED, VAL_COUNT, VAL_SIZE = 12345, 300, (512, 384)
EVAL_SPEC = OutputSpec(conf_threshold=0.001, iou_threshold=0.6, max_detections=300)
# Loss gains and assigner settings from YOLOv8 (box 7.5, cls 0.5; TAL top-10, alpha 0.5,
# beta 6), which train well from scratch.
BOX_GAIN, CLS_GAIN = 7.5, 0.5
TOPK, ALPHA, BETA = 10, 0.5, 6.0


# --- data --------------------------------------------------------------------------------


def make_sample(rng: np.random.Generator, spec: InputSpec) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """One training scene as (tensor [3,H,W], boxes in input pixels [N,4], classes [N])."""
    image, boxes, classes = render_scene(rng, width=VAL_SIZE[0], height=VAL_SIZE[1])
    resized, box = resize_image(image, spec)
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2] * box.scale_x + box.pad_x
    boxes[:, 1::2] = boxes[:, 1::2] * box.scale_y + box.pad_y
    if rng.random() < 0.5:  # horizontal flip: scenes are left/right symmetric
        resized = resized[:, ::-1]
        boxes[:, [0, 2]] = spec.width - boxes[:, [2, 0]]
    return to_tensor(resized, spec)[0], boxes, classes


def make_batch(seed: int, step: int, size: int,
               spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch with ground truth padded to the batch's max object count.

    Returns:
        images [B,3,H,W], gt boxes [B,M,4] xyxy input pixels, gt classes [B,M] (-1 = padding).
    """
    # Three-part entropy [seed, step, j]: never equal to a validation image's [12345, i].
    samples = [make_sample(np.random.default_rng([seed, step, j]), spec) for j in range(size)]
    m = max(1, max(len(s[2]) for s in samples))
    boxes = np.zeros((size, m, 4), np.float32)
    classes = np.full((size, m), -1, np.int64)
    for j, (_, b, c) in enumerate(samples):
        boxes[j, : len(c)], classes[j, : len(c)] = b, c
    images = torch.from_numpy(np.stack([s[0] for s in samples]))
    return images, torch.from_numpy(boxes), torch.from_numpy(classes)


class SceneStream(torch.utils.data.IterableDataset):
    """Endless batches ``make_batch(seed, step, ...)`` for step 0, 1, 2, ...

    Run in one DataLoader worker so rendering (about a quarter of a step's time on 2 cores)
    overlaps the forward/backward pass; a single worker keeps the batch order deterministic.
    """

    def __init__(self, seed: int, batch: int, spec: InputSpec) -> None:
        super().__init__()
        self.seed, self.batch, self.spec = seed, batch, spec

    def __iter__(self):
        cv2.setNumThreads(1)
        step = 0
        while True:
            yield make_batch(self.seed, step, self.batch, self.spec)
            step += 1


def batches(args: argparse.Namespace, spec: InputSpec):
    """Training batches, rendered in a worker process unless ``--workers 0``."""
    stream = SceneStream(args.seed, args.batch, spec)
    if args.workers == 0:
        return iter(stream)
    return iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                            prefetch_factor=4, persistent_workers=True))


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


def compute_loss(model: YoloLite, images: torch.Tensor, gt_boxes: torch.Tensor,
                 gt_classes: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """YOLOv8-style loss: BCE on IoU-aware class targets + CIoU on assigned anchors."""
    box_raw, cls_raw = model.forward_raw(images)
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
    if fg.any():
        weight = target_scores.sum(-1)[fg]
        ciou = box_iou(pred[fg], target_boxes[fg], ciou=True)
        box_loss = ((1.0 - ciou) * weight).sum() / total
    else:
        box_loss = pred.sum() * 0.0
    loss = BOX_GAIN * box_loss + CLS_GAIN * cls_loss
    parts = {"box": float(box_loss.detach()), "cls": float(cls_loss.detach())}
    return loss * images.shape[0], parts


# --- training ----------------------------------------------------------------------------


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
    """Linear warm-up, then cosine decay to 5% over the time budget."""
    if progress < warmup:
        return 0.05 + 0.95 * progress / warmup
    t = (progress - warmup) / max(1e-9, 1 - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def train(args: argparse.Namespace) -> YoloLite:
    """Runs the time-budgeted training loop; returns the EMA model."""
    spec = InputSpec(shape=(1, 3, args.imgsz, args.imgsz))
    torch.manual_seed(args.seed)
    if args.init is not None:  # continue from earlier weights (use another --seed for new data)
        model = load_checkpoint(args.init, imgsz=args.imgsz).train()
        print(f"initialised from {args.init}", flush=True)
    else:
        model = YoloLite(len(LABELS), width=args.width, imgsz=args.imgsz)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"YoloLite width={model.width}: {n_params / 1e6:.3f} M parameters", flush=True)
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr,
                            betas=(0.9, 0.999))
    ema = EMA(model)
    budget = args.minutes * 60.0
    stream = batches(args, spec)
    start = time.perf_counter()
    step, data_time, seen = 0, 0.0, 0
    while (elapsed := time.perf_counter() - start) < budget:
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(elapsed / budget, args.warmup)
        t0 = time.perf_counter()
        images, gt_boxes, gt_classes = next(stream)
        data_time += time.perf_counter() - t0  # time spent waiting for data
        model.train()
        loss, parts = compute_loss(model, images, gt_boxes, gt_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        step, seen = step + 1, seen + args.batch
        if step % args.log_every == 0:
            print(f"step {step} {elapsed / 60:5.1f} min  img/s {seen / elapsed:5.1f}  "
                  f"data {data_time / elapsed:4.0%}  lr {opt.param_groups[0]['lr']:.2e}  "
                  f"box {parts['box']:.3f} cls {parts['cls']:.3f}", flush=True)
    print(f"trained {step} steps, {seen} images in {(time.perf_counter() - start) / 60:.1f} min",
          flush=True)
    return ema.model


# --- evaluation --------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: YoloLite, root: Path, *, imgsz: int) -> dict[str, float | dict]:
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


def half_roundtrip(model: YoloLite) -> dict[str, torch.Tensor]:
    """The fp16 state dict to ship, loaded back into ``model`` so metrics describe it."""
    state = {k: (v.half() if v.dtype.is_floating_point else v)
             for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.dtype.is_floating_point else v
                           for k, v in state.items()})
    return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=18.0, help="training time budget")
    parser.add_argument("--out", type=Path, default=ROOT / "edgekit/sample/sample_detector.pt")
    parser.add_argument("--seed", type=int, default=0, help="training data and init seed")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this checkpoint's weights instead of random init")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    parser.add_argument("--lr", type=float, default=8e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=0.05, help="fraction of the budget")
    parser.add_argument("--val-count", type=int, default=VAL_COUNT)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="scene-rendering processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.seed == VAL_SEED:
        raise SystemExit(f"--seed {VAL_SEED} is the validation seed; pick another.")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)  # one scene at a time; torch owns the cores
    model = train(args)
    state = half_roundtrip(model)
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, count=args.val_count, seed=VAL_SEED, width=VAL_SIZE[0],
                      height=VAL_SIZE[1])
        t0 = time.perf_counter()
        metrics = evaluate(model, Path(tmp), imgsz=args.imgsz)
    metrics.update({"val_seed": VAL_SEED, "val_images": args.val_count,
                    "train_minutes": args.minutes, "eval_seconds": round(time.perf_counter() - t0)})
    print(json.dumps(metrics, indent=2))
    print(f"mAP@0.5 {metrics['mAP50']:.4f}  mAP@0.5:0.95 {metrics['mAP50_95']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {**model.config(), "labels": list(LABELS), "arch": "YoloLite",
              "input": {"shape": [1, 3, args.imgsz, args.imgsz], "color": "rgb",
                        "letterbox": True, "pad_value": 114, "scale": "1/255"},
              "output": "yolov8: [1, 4 + nc, N], cx cy w h input pixels, sigmoid scores",
              "train": {"seed": args.seed, "batch": args.batch, "lr": args.lr,
                        "minutes": args.minutes,
                        "init": str(args.init) if args.init else None}}
    torch.save({"state_dict": state, "config": config, "metrics": metrics}, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
