"""Real-time pipelines: sources -> preprocess -> shared inference -> tracking -> sinks.

``import edgekit.pipeline`` loads no runtime and no OpenCV; they load when a pipeline starts.
"""

from __future__ import annotations

from .metrics import LatencyWindow, Metrics, prometheus
from .model import ModelSettings, StagedModel, staged
from .pipeline import Pipeline, PipelineSettings

__all__ = ["LatencyWindow", "Metrics", "ModelSettings", "Pipeline", "PipelineSettings",
           "StagedModel", "prometheus", "staged"]
