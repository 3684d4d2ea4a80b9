"""Detector definitions that edgekit ships and exports (installed as ``edgekit.export.models``)."""

from .yolo_lite import SAMPLE_WEIGHTS, Decode, YoloLite, build_sample_detector, load_checkpoint

__all__ = ["SAMPLE_WEIGHTS", "Decode", "YoloLite", "build_sample_detector", "load_checkpoint"]
