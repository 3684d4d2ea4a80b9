"""The detectors edgekit ships with their weights, by name: ``edgekit export sample|reference``.

One table, read by the model loader (``load_model("reference")``), the training script
(``samples/train_detector.py --model reference``) and the benchmarks. Light on purpose: no torch
import, so ``load_model`` can tell a shipped name from a file path for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SHIPPED", "ShippedModel", "shipped_names"]


@dataclass(frozen=True, kw_only=True)
class ShippedModel:
    """One shipped detector.

    Attributes:
        name: The word users type (``edgekit export NAME``).
        filename: Its checkpoint inside the installed ``edgekit/sample`` folder.
        summary: One line for help texts and the manifest's description.
        train: The command that (re)trains it from a source checkout.
    """

    name: str
    filename: str
    summary: str
    train: str

    @property
    def weights(self) -> Path:
        """Where the checkpoint lives inside the installed ``edgekit`` package."""
        import edgekit

        # __path__ rather than __file__: it also works while edgekit is a namespace package.
        return Path(next(iter(edgekit.__path__))) / "sample" / self.filename


SHIPPED: dict[str, ShippedModel] = {m.name: m for m in (
    ShippedModel(name="sample", filename="sample_detector.pt",
                 summary="edgekit sample detector (YoloLite, 447 k parameters, 320x320)",
                 train="make train-sample"),
    ShippedModel(name="reference", filename="reference_detector.pt",
                 summary="edgekit reference detector (YOLOv8n-class, 3.0 M parameters, 640x640)",
                 train="make train-reference"),
)}


def shipped_names() -> str:
    """``'sample' or 'reference'``, for messages."""
    return " or ".join(f"'{name}'" for name in SHIPPED)
