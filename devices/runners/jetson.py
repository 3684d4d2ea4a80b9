"""Jetson GPU runner: TensorRT through onnxruntime's TensorRT provider, then CUDA, then CPU.

TensorRT engines are not portable between GPUs or TensorRT versions (shared/TOOLCHAIN.md), so
the engine is built on the board on first run and cached in a directory keyed by a
fingerprint of TensorRT version, GPU, precision and input shapes: a board that changes any of
them gets a fresh engine instead of a crash or a silent mismatch. Providers that are not
installed are left out of the chain, and onnxruntime's own report (session.get_providers())
is what ``executed_on`` shows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgekit.backends import BackendOptions
from edgekit.bundle import Artifact, Bundle, Format, Precision

from ..detect import Facts
from ..profiles import BoardProfile
from .base import CACHE_ROOT, Plan, Request, first_runnable, input_shapes, local_threads

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def engine_cache_key(*, tensorrt_version: str, gpu: str, precision: Precision,
                     shapes: dict[str, list[int]], model_sha256: str = "") -> str:
    """A short, stable key naming one engine build (hex, 16 chars)."""
    facts = {"tensorrt": tensorrt_version, "gpu": gpu, "precision": str(precision),
             "shapes": {k: list(v) for k, v in sorted(shapes.items())}, "model": model_sha256}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def provider_chain(facts: Facts, *, precision: Precision, shapes: dict[str, list[int]],
                   model_sha256: str = "", cache_root: Path = CACHE_ROOT / "tensorrt",
                   ) -> tuple[list[str], list[dict[str, Any]], Path | None]:
    """The onnxruntime providers (with options) to ask for, best first, among those present.

    Returns:
        Providers, one options dict per provider, and the engine cache dir (None without TRT).
    """
    providers: list[str] = []
    options: list[dict[str, Any]] = []
    cache_dir = None
    if TRT in facts.ort_providers:
        key = engine_cache_key(tensorrt_version=facts.tensorrt_version or "unknown",
                               gpu=facts.gpu_name or "unknown", precision=precision,
                               shapes=shapes, model_sha256=model_sha256)
        cache_dir = cache_root / key
        providers.append(TRT)
        # int8 QDQ models still run their float layers best in fp16 on the GPU.
        options.append({
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_fp16_enable": str(precision in (Precision.FP16, Precision.INT8)),
            "trt_int8_enable": str(precision is Precision.INT8),
        })
    if CUDA in facts.ort_providers:
        providers.append(CUDA)
        options.append({"device_id": "0"})
    providers.append(CPU)
    options.append({})
    return providers, options, cache_dir


def plan(bundle: Bundle, board: BoardProfile, request: Request, facts: Facts) -> Plan:
    """Chooses the ONNX artifact and the provider chain for a Jetson."""
    artifact: Artifact
    artifact, backend = first_runnable(bundle, board, request, facts)
    notes = []
    if artifact.format is not Format.ONNX:
        return Plan(artifact=artifact, backend=backend, requested="cpu",
                    options=BackendOptions(threads=local_threads(board, request, facts)))
    providers, provider_options, cache_dir = provider_chain(
        facts, precision=artifact.precision, shapes=input_shapes(bundle, artifact),
        model_sha256=artifact.sha256)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        notes.append(f"TensorRT engine cache: {cache_dir}")
    else:
        notes.append("onnxruntime has no TensorRT provider here: "
                     f"{' > '.join(providers)} (see executed_on)")
    options = BackendOptions(
        threads=local_threads(board, request, facts), device="tensorrt",
        extra={"providers": providers, "provider_options": provider_options})
    return Plan(artifact=artifact, backend=backend, options=options, requested=providers[0],
                notes=tuple(notes))
