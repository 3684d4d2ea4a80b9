"""Does the exported file compute what the source model computes? Measured, and kept.

The inputs are synthetic scenes put through :func:`edgekit.preprocess.preprocess` with the
bundle's own InputSpec, the one preprocessing every runtime uses. The reference is the torch
model; for an ONNX source it is the unslimmed file, so slimming is what gets checked. The
inputs and the exported model's outputs are saved as ``golden.npz``: a device health check
replays them and compares, without needing torch or the synthetic renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import InputSpec, sha256_file
from edgekit.errors import ModelError

from .loaders import LoadedModel, _torch
from .onnx import _first_tensor

__all__ = ["check_parity", "sample_inputs", "GOLDEN_FILE", "GOLDEN_MAX_BYTES", "PARITY_RTOL"]

GOLDEN_FILE = "golden.npz"
GOLDEN_MAX_BYTES = 2_000_000  # bundles travel to boards over slow links; 2 MB is plenty
SEEDS = (0, 1, 2, 3)
# fp32 exports measured 1.5e-5 max |diff| on YoloLite at 320 (values up to 320 px): 1e-4 of the
# output's scale leaves room for kernel differences and catches a wrong export by far.
PARITY_RTOL = 1e-4


def sample_inputs(spec: InputSpec, *, seeds: Sequence[int] = SEEDS) -> list[np.ndarray]:
    """Renders one synthetic scene per seed and preprocesses it with ``spec``."""
    from edgekit.data.synth import render_scene
    from edgekit.preprocess import preprocess

    return [preprocess(render_scene(np.random.default_rng(seed))[0], spec)[0] for seed in seeds]


def check_parity(model: LoadedModel, onnx_path: str | Path, spec: InputSpec, *,
                 golden: str | Path | None = None, seeds: Sequence[int] = SEEDS,
                 max_golden_bytes: int = GOLDEN_MAX_BYTES,
                 head: str | None = None) -> dict[str, Any]:
    """Compares the exported ONNX file with its source on preprocessed synthetic scenes.

    Args:
        model: The source model (torch module, or the original ONNX file).
        onnx_path: The exported file.
        spec: The bundle's input spec (size, letterbox, normalisation, input name).
        golden: Where to write the golden inputs/outputs (``.npz``); None to skip.
        seeds: One synthetic scene per seed.
        max_golden_bytes: The golden file keeps fewer images until it fits this size.
        head: The output convention, whose ``comparable`` lines outputs up with the
            reference (an end-to-end head's top-k rows are matched, not compared by position).

    Returns:
        ``{"max_abs_diff": float, "tolerance": float, "images": n, "reference": "torch" |
        "onnxruntime (unslimmed source)", "golden": file name or None, "golden_sha256",
        "golden_images", "golden_bytes"}``. The golden file holds ``inputs`` [k, 1, 3, H, W]
        and the exported model's ``outputs`` [k, 1, 4 + nc, N], float32.
    """
    inputs = sample_inputs(spec, seeds=seeds)
    candidate = _ort_runner(Path(onnx_path))
    if model.is_onnx:
        reference, label = _ort_runner(model.onnx_path), "onnxruntime (unslimmed source)"
    else:
        reference, label = _torch_runner(model.module), "torch"
    outputs = [candidate(x) for x in inputs]
    from edgekit.heads import HEADS

    arrange = HEADS.load(head).comparable if head else lambda out, ref: (out, ref)
    diffs = [_max_abs_diff(*arrange(out, reference(x)), onnx_path) for x, out in
             zip(inputs, outputs, strict=True)]
    # Boxes are in pixels and scores in 0..1: the tolerance scales with the largest value.
    scale = max(1.0, max(float(np.max(np.abs(out))) for out in outputs))
    result: dict[str, Any] = {"max_abs_diff": max(diffs), "tolerance": PARITY_RTOL * scale,
                              "images": len(inputs), "reference": label, "golden": None}
    if golden is not None:
        result.update(_write_golden(Path(golden), inputs, outputs, max_golden_bytes))
    return result


def _max_abs_diff(out: np.ndarray, ref: np.ndarray, path: str | Path) -> float:
    if out.shape != ref.shape:  # broadcasting would hide a wrong export behind a number
        raise ModelError(f"{path}: output shape {list(out.shape)} differs from the "
                         f"reference's {list(ref.shape)}.")
    return float(np.max(np.abs(out - ref)))


def _ort_runner(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    from .onnx import session_feed

    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: np.asarray(session.run(None, session_feed(session, x))[0], np.float32)


def _torch_runner(module: Any) -> Any:
    torch = _torch()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = _first_tensor(module(torch.from_numpy(x)))  # the output the export keeps
        return out.detach().cpu().float().numpy()

    return run


def _write_golden(path: Path, inputs: list[np.ndarray], outputs: list[np.ndarray],
                  max_bytes: int) -> dict[str, Any]:
    """Saves as many images as fit ``max_bytes`` (halving; at least one is always kept)."""
    count = len(inputs)
    while True:
        np.savez_compressed(path, inputs=np.stack(inputs[:count]).astype(np.float32),
                            outputs=np.stack(outputs[:count]).astype(np.float32))
        if path.stat().st_size <= max_bytes or count == 1:
            break
        count = max(1, count // 2)
    return {"golden": path.name, "golden_sha256": sha256_file(path), "golden_images": count,
            "golden_bytes": path.stat().st_size}
