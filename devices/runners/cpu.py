"""Generic CPU runner: the fastest available of onnxruntime, OpenVINO and LiteRT.

"Fastest" is the board profile's ``prefer`` order (measured: on x86 OpenVINO int8 and ORT
U8S8 are about 2x fp32, shared/TOOLCHAIN.md), filtered by which runtimes are installed here.
"""

from __future__ import annotations

from edgekit.backends import BackendOptions
from edgekit.bundle import Bundle, Format

from ..detect import Facts
from ..profiles import BoardProfile
from .base import Plan, Request, first_runnable, local_threads


def plan(bundle: Bundle, board: BoardProfile, request: Request, facts: Facts) -> Plan:
    """Chooses the artifact and backend for a plain CPU."""
    artifact, backend = first_runnable(bundle, board, request, facts)
    # (the Detector adds the layout facts a .tflite needs: edgekit.detector.with_layouts)
    extra: dict = {}
    if artifact.format is Format.OPENVINO:
        extra = {"precision": "fp32"}  # f32, not this CPU's silent bf16 default
    return Plan(
        artifact=artifact,
        backend=backend,
        requested="cpu",
        options=BackendOptions(
            threads=local_threads(board, request, facts), device="cpu", extra=extra
        ),
    )
