"""Checkpoints of edgekit's own detectors: ``{"state_dict", "config", "metrics"}`` files.

``config["arch"]`` names the network class through :data:`ARCHITECTURES`, so one loader builds
the sample (YoloLite), the reference model (YoloV8) or any architecture registered later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgekit.registry import Registry

__all__ = ["ARCHITECTURES", "build_model", "build_shipped", "load_checkpoint"]

ARCHITECTURES: Registry[Any] = Registry("architecture", {
    "YoloLite": "edgekit.export.models.yolo_lite:YoloLite",
    "YoloV8": "edgekit.export.models.yolov8:YoloV8",
})


def build_model(config: dict[str, Any], *, imgsz: int | None = None) -> torch.nn.Module:
    """A freshly initialised network from a checkpoint config (``arch`` + its arguments)."""
    # Checkpoints written before the registry existed are all YoloLite.
    return ARCHITECTURES.load(config.get("arch", "YoloLite")).from_config(config, imgsz=imgsz)


def load_checkpoint(path: str | Path, *, imgsz: int | None = None) -> torch.nn.Module:
    """Builds the network a checkpoint describes and loads its weights.

    Args:
        path: The ``.pt`` file written by ``samples/train_detector.py``.
        imgsz: Input size to build the anchor grid for; defaults to the trained one.

    Returns:
        The model in eval mode, float32.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ckpt["config"], imgsz=imgsz)
    model.load_state_dict({k: v.float() if v.dtype.is_floating_point else v
                           for k, v in ckpt["state_dict"].items()})
    return model.eval()


def build_shipped(name: str, *, imgsz: int | None = None) -> torch.nn.Module:
    """Loads a shipped detector (``sample``, ``reference``) in eval mode.

    Raises:
        FileNotFoundError: its weights are not installed; says how to produce them.
    """
    from edgekit.export.shipped import SHIPPED

    model = SHIPPED[name]
    if not model.weights.is_file():
        raise FileNotFoundError(
            f"{model.summary}: weights not found at {model.weights}. Train them with "
            f"`{model.train}` in a source checkout, or reinstall edgekit.")
    return load_checkpoint(model.weights, imgsz=imgsz)
