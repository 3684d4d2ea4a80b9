"""Raspberry Pi runner: LiteRT with XNNPACK and one thread per core, INT8 first.

The Pi profiles prefer tflite/int8, then onnx/int8 (onnxruntime is the alternative when the
bundle has no .tflite or LiteRT is not installed), then the fp32 files.
"""

from __future__ import annotations

from edgekit.backends import BackendOptions
from edgekit.bundle import Bundle, Format

from ..detect import Facts
from ..profiles import BoardProfile
from .base import Plan, Request, first_runnable, local_threads


def plan(bundle: Bundle, board: BoardProfile, request: Request, facts: Facts) -> Plan:
    """Chooses the artifact and LiteRT/onnxruntime settings for a Raspberry Pi."""
    artifact, backend = first_runnable(bundle, board, request, facts)
    threads = local_threads(board, request, facts)
    notes = (
        ()
        if artifact.format is Format.TFLITE
        else (f"no runnable .tflite for this request: {artifact.key} on {backend}",)
    )
    return Plan(
        artifact=artifact,
        backend=backend,
        requested="cpu",
        notes=notes,
        options=BackendOptions(threads=threads, device="cpu"),
    )
