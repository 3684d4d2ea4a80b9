"""Writes Ultralytics checkpoints with the user's ultralytics, offline, and their own outputs.

Run as a script in a subprocess (ultralytics patches torch.save, cv2 and numpy printing at
import: it must not leak into the test process):

    python ultralytics_checkpoints.py OUT_DIR IMGSZ

For each of yolov8n (one-to-many Detect head), yolo26n (one-to-one, end-to-end) and a
yolov8n-cls classifier, the network is built from Ultralytics' shipped YAML with 3 classes
and seeded random weights (no download), saved as its trainer saves a checkpoint (half-
precision EMA, train_args with imgsz) and stripped with its own ``strip_optimizer`` as a
finished training run leaves ``best.pt``. ``reference.npz`` holds one input and each
detector's own inference output, from Ultralytics' loader and its normal (non-export)
forward: what edgekit's ONNX must reproduce.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, load_checkpoint
from ultralytics.utils.torch_utils import strip_optimizer

NAMES = {0: "car", 1: "truck", 2: "person"}
MODELS = {"v8": ("yolov8n.yaml", DetectionModel), "y26": ("yolo26n.yaml", DetectionModel),
          "cls": ("yolov8n-cls.yaml", ClassificationModel)}


def build(cfg: str, cls: type, imgsz: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = cls(cfg, nc=3, verbose=False)
    model.names = dict(NAMES)
    with torch.no_grad():  # random but not degenerate: scores spread, some above 0.25
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        head = model.model[-1]
        for branch in ("cv3", "one2one_cv3"):
            for seq in getattr(head, branch, None) or []:
                seq[-1].bias[0] = 1.5  # the default init scores ~1e-4
    model.args = {"imgsz": imgsz}
    return model


def save(model: torch.nn.Module, path: Path, cfg: str, imgsz: int) -> None:
    torch.save({"epoch": 3, "best_fitness": 0.1, "model": None, "ema": model.half(),
                "updates": 10, "optimizer": None,
                "train_args": {"imgsz": imgsz, "model": cfg, "data": "data.yaml"},
                "train_metrics": {"metrics/mAP50(B)": 0.1}, "date": "2026-12-02"}, path)
    strip_optimizer(path)


def main(out: Path, imgsz: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    image = torch.from_numpy(np.random.default_rng(7).random((1, 3, imgsz, imgsz),
                                                             dtype=np.float32))
    outputs = {"input": image.numpy()}
    for name, (cfg, cls) in MODELS.items():
        path = out / f"{name}.pt"
        save(build(cfg, cls, imgsz), path, cfg, imgsz)
        if cls is DetectionModel:
            model, _ = load_checkpoint(path)  # fp32, eval, as Ultralytics predicts with it
            if getattr(model.model[-1], "one2one_cv2", None) is not None:
                model.end2end = True  # the NMS-free branch, as `yolo predict` uses it
            with torch.no_grad():
                outputs[name] = model(image)[0].numpy()
    np.savez(out / "reference.npz", **outputs)
    print("wrote", *sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
