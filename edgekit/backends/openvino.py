"""OpenVINO backend: IR (``.xml`` + ``.bin``) or ``.onnx`` on CPU, GPU, NPU or AUTO.

Two facts drive this module (see shared/TOOLCHAIN.md):

- On CPUs with AVX512-BF16, OpenVINO runs an "fp32" model in bf16 unless told otherwise, so
  the inference precision is always set explicitly (f32 by default) and read back.
- "AUTO" and "AUTO:NPU,CPU" compile and silently run on the CPU when the NPU is missing, so
  what ran is read back from ``EXECUTION_DEVICES``, never assumed from the request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Format
from ..errors import EdgekitError, ModelError
from .base import Backend, BackendOptions, Capabilities, Runtime, TensorInfo

log = logging.getLogger("edgekit")

# edgekit precision names -> OpenVINO element types for INFERENCE_PRECISION_HINT.
PRECISION_HINTS = {"fp32": "f32", "f32": "f32", "fp16": "f16", "f16": "f16",
                   "bf16": "bf16"}
# Devices that read INFERENCE_PRECISION_HINT; the NPU compiler picks its own (fp16/int8).
_HINTED_DEVICES = ("CPU", "GPU")


def device_name(device: str) -> str:
    """Maps an edgekit device string ("cpu", "auto:npu,cpu") to OpenVINO's ("CPU", ...)."""
    return device.strip().upper().replace(" ", "")


def requested_devices(device: str) -> list[str]:
    """The physical devices a device string asks for ("AUTO:NPU,CPU" -> ["NPU", "CPU"])."""
    name = device_name(device)
    kind, _, rest = name.partition(":")
    if kind in ("AUTO", "MULTI", "HETERO"):
        return [d for d in rest.split(",") if d]
    return [kind]


class OpenVinoBackend(Backend):
    """Runs OpenVINO IR or ONNX files with OpenVINO.

    ``options.device``: "cpu", "gpu", "npu", "auto" or "auto:npu,cpu".
    ``options.extra``:
        ``precision``: inference precision "fp32" (default), "fp16" or "bf16"; for CPU and GPU.
        ``cache_dir``: where compiled blobs are cached (NPU compilation takes seconds).
        ``fallback``: devices to use, in order, when the requested one is missing (e.g.
            ``["gpu", "cpu"]``). Without it a missing device is an error; with it a warning is
            logged and ``executed_on`` says what really ran.
        ``shapes``: ``{input name: [dims]}`` to make dynamic inputs static (NPUs need it).
    """

    name = "openvino"
    capabilities = Capabilities(formats=frozenset({Format.OPENVINO, Format.ONNX}),
                                devices=("cpu", "gpu", "npu", "auto"))
    format = Format.OPENVINO
    suffixes = (".xml",)  # the IR's weights sit beside it in a .bin of the same stem
    runtimes = (Runtime(module="openvino", package="openvino", extra="openvino"),)

    def __init__(self, path: Path, *, options: BackendOptions) -> None:
        super().__init__(path, options=options)
        ov, _ = self.import_runtime(purpose="running OpenVINO models")
        self._version = ov.get_version().split("-")[0]
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file.")
        core = ov.Core()
        self.device = self._pick_device(core, options)
        model = self._read(core)
        shapes = options.extra.get("shapes")
        if shapes:
            model.reshape({name: list(dims) for name, dims in dict(shapes).items()})
        if options.extra.get("cache_dir"):
            Path(str(options.extra["cache_dir"])).mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(options.extra["cache_dir"])})
        for dev in _HINTED_DEVICES:
            if dev in core.available_devices:
                core.set_property(dev, self._device_config(dev, options))
        try:
            self.compiled = core.compile_model(model, self.device)
        except Exception as exc:  # OpenVINO raises RuntimeError with multi-line messages
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise ModelError(
                f"OpenVINO cannot compile {self.path} for {self.device}: {first}",
                hint="Make the input shapes static (NPU) or pick another device.",
            ) from None
        self.request = self.compiled.create_infer_request()
        self._ov = ov
        self._bound: list[np.ndarray] = []
        self._inputs = [_info(port) for port in self.compiled.inputs]
        self._outputs = [_info(port) for port in self.compiled.outputs]

    def _read(self, core: Any) -> Any:
        try:
            return core.read_model(str(self.path))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise ModelError(
                f"OpenVINO cannot read {self.path}: {first}",
                hint="An IR needs its .bin beside the .xml; re-export a damaged file.",
            ) from None

    @staticmethod
    def _device_config(device: str, options: BackendOptions) -> dict[str, Any]:
        precision = str(options.extra.get("precision") or "fp32").lower()
        if precision not in PRECISION_HINTS:
            raise EdgekitError(
                f"OpenVINO inference precision '{precision}' is not known.",
                hint=f"Use one of: {', '.join(sorted(PRECISION_HINTS))}.",
            )
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU" and options.threads:
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        return config

    @staticmethod
    def _pick_device(core: Any, options: BackendOptions) -> str:
        """Returns the OpenVINO device to compile for; refuses a missing one unless allowed."""
        wanted = device_name(options.device)
        available = list(core.available_devices)
        physical = requested_devices(options.device)
        missing = [d for d in physical if d.split(".")[0] not in available]
        if wanted.startswith(("AUTO", "MULTI")):
            # AUTO is a fallback the caller asked for by name: allowed, but never silent.
            if physical and missing == physical:
                log.warning("OpenVINO %s: none of %s is here (have %s); AUTO will run on "
                            "what is available", wanted, physical, available)
            elif missing:
                log.warning("OpenVINO %s: %s missing (have %s)", wanted, missing, available)
            return wanted
        if not missing:
            return wanted
        fallback = [device_name(str(d)) for d in options.extra.get("fallback") or ()]
        usable = [d for d in fallback if d in available]
        if not usable:
            raise EdgekitError(
                f"OpenVINO device '{wanted}' is not available on this machine "
                f"(available: {', '.join(available) or 'none'}).",
                hint="Install its driver, pick an available device, or allow a fallback "
                     "explicitly (--allow-fallback / extra={'fallback': ['cpu']}).",
            )
        log.warning("OpenVINO device %s is not available (have %s): falling back to %s "
                    "as explicitly allowed", wanted, available, usable[0])
        return usable[0]

    @property
    def executed_on(self) -> str:
        devices = self.compiled.get_property("EXECUTION_DEVICES")
        return ",".join(devices) if isinstance(devices, list | tuple) else str(devices)

    @property
    def inference_precision(self) -> str | None:
        """The precision OpenVINO really computes in on the device that runs ("f32", "bf16")."""
        try:
            value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # AUTO/NPU do not all expose it
            return None
        # An ov.Type: its short name ("f32", "bf16") is what OpenVINO's docs and tools print.
        return value.get_type_name() if hasattr(value, "get_type_name") else str(value)

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._inputs):
            raise ModelError(f"{self.path.name} takes {len(self._inputs)} inputs, "
                             f"got {len(inputs)}.")
        # Shared input tensors: OpenVINO reads the caller's arrays in place (no copy of a
        # 640x640 frame per call), as benchmark_app's preallocated tensors do. An array passed
        # again (a pipeline's reused buffer, a benchmark's input) is already bound: only new
        # arrays are wrapped. The outputs are copied out of the request's own tensors (which the
        # next inference overwrites) once, by infer() itself.
        if len(self._bound) != len(inputs) or any(
                a is not b for a, b in zip(inputs, self._bound, strict=True)):
            arrays = [np.ascontiguousarray(a, dtype=info.dtype)
                      for a, info in zip(inputs, self._inputs, strict=True)]
            for index, array in enumerate(arrays):
                self.request.set_input_tensor(index, self._ov.Tensor(array, shared_memory=True))
            # Holding the arrays keeps their memory alive and their identity unique.
            self._bound = list(inputs) if all(
                a is b for a, b in zip(arrays, inputs, strict=True)) else []
        # share_outputs=False (the default): the returned arrays are the one copy made.
        return list(self.request.infer().to_tuple())

    def versions(self) -> dict[str, str]:
        return {"openvino": self._version}


def _info(port: Any) -> TensorInfo:
    names = port.get_names()
    name = port.get_any_name() if names else f"input{port.get_index()}"
    shape = tuple(int(d.get_length()) if d.is_static else None for d in port.get_partial_shape())
    return TensorInfo(name, shape, np.dtype(port.get_element_type().to_dtype()))
