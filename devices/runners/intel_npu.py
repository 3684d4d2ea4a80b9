"""Intel NPU runner: OpenVINO on "NPU" with a static input shape and a compiled-blob cache.

The NPU compiler needs static shapes and takes seconds per compile, so the bundle's input
shape is forced and compiled blobs are cached. A missing NPU is an error unless the caller
allowed a fallback, and then OpenVINO logs a warning and ``executed_on`` shows GPU or CPU.
"""

from __future__ import annotations

from edgekit.backends import BackendOptions
from edgekit.bundle import Bundle, Format
from edgekit.errors import EdgekitError

from ..detect import Facts
from ..profiles import BoardProfile
from .base import CACHE_ROOT, Plan, Request, first_runnable, input_shapes, local_threads

FALLBACK = ("gpu", "cpu")


def plan(bundle: Bundle, board: BoardProfile, request: Request, facts: Facts) -> Plan:
    """Chooses the OpenVINO artifact (IR, or ONNX read by OpenVINO) for the NPU."""
    artifact, backend = first_runnable(bundle, board, request, facts)
    if artifact.format is Format.ONNX and facts.has_runtime("openvino"):
        backend = "openvino"  # OpenVINO reads ONNX too: the NPU is still what runs it
    if backend != "openvino":
        return Plan(artifact=artifact, backend=backend, requested="cpu",
                    options=BackendOptions(threads=local_threads(board, request, facts)),
                    notes=("OpenVINO is not installed: no NPU",))
    has_npu = "NPU" in {d.split(".")[0] for d in facts.openvino_devices}
    if not has_npu and not request.fallback:
        raise EdgekitError(
            f"The board '{board.name}' runs on an Intel NPU, and OpenVINO sees none here "
            f"(devices: {', '.join(facts.openvino_devices) or 'none'}).",
            hint="Install the NPU driver, pick another --board, or allow a GPU/CPU fallback "
                 "explicitly with --allow-fallback.")
    extra = {"cache_dir": str(CACHE_ROOT / "openvino"),
             "shapes": input_shapes(bundle, artifact)}  # static: the NPU needs it
    if request.fallback:
        extra["fallback"] = list(FALLBACK)
    notes = () if has_npu else ("no NPU here: fallback to GPU/CPU allowed, see executed_on",)
    return Plan(artifact=artifact, backend="openvino", requested="NPU", notes=notes,
                options=BackendOptions(threads=request.threads, device="npu", extra=extra))
