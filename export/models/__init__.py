"""Detector definitions that edgekit ships and exports (installed as ``edgekit.export.models``)."""

from .checkpoint import ARCHITECTURES, build_model, build_shipped, load_checkpoint
from .yolo_lite import SAMPLE_WEIGHTS, Decode, YoloLite, build_sample_detector
from .yolov8 import YoloV8

__all__ = ["ARCHITECTURES", "SAMPLE_WEIGHTS", "Decode", "YoloLite", "YoloV8", "build_model",
           "build_sample_detector", "build_shipped", "load_checkpoint"]
