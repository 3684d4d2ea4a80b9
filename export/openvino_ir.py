"""OpenVINO IR artifacts (``.xml`` + ``.bin``) at fp32, fp16 and INT8, from the fp32 ONNX.

- fp32/fp16: ``openvino.convert_model`` on the static-shape ONNX (NPUs refuse dynamic
  shapes), saved with ``compress_to_fp16`` off or on. fp16 IR stores fp16 weights; the CPU
  still computes at the precision the runtime is told (edgekit says f32 explicitly).
- INT8: NNCF post-training quantization on the converted model, calibrated on the job's
  preprocessed tensors, with the decode/concat tail in NNCF's ignored scope (INT8 of one
  tensor mixing pixel boxes and 0..1 scores destroys the scores, shared/TOOLCHAIN.md). The
  gate's mixed-precision fallback adds the layers its ranking found noisiest (``exclude``,
  ONNX node names) to that scope. NNCF's accuracy control comes only after those, capped
  at a few reverted layers: uncapped it re-ranked layers by validation mAP at every step,
  3.5 minutes a step on a real-size YOLOv8 at 640 (issue 16).

INT8 speed depends on the CPU's int8 instructions. On an AVX2-only host (AMD EPYC, no VNNI,
no AVX-512; 2026-12-02, reference model at 640, 2 threads, PERF_COUNT via
benchmarks/int8_op_profile.py) OpenVINO runs int8 convs with jit_avx2_I8 kernels: 292 ms of
convolution per run against 392 ms in f32 (brgconv_avx2_f32), 1.3x, so the whole model
gains 1.1-1.7x (load-dependent), not the 2-3x that VNNI/AMX CPUs give.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgekit.bundle import Format, OutputSpec, Precision
from edgekit.data.dataset import Dataset
from edgekit.errors import ModelError, require

from .batch import pin_openvino
from .jobs import ExportedFile, Exporter, ExportJob, Fallback, GateFailure
from .loaders import first_line, quiet_logger, tool_versions

__all__ = ["export_openvino", "float_tail_ov", "WEIGHT_TYPES", "EXPORTER"]

# OpenVINO op types that carry weights: the float tail is what lies between them and the output.
WEIGHT_TYPES = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                          "MatMul"})
_NOT_LAYERS = frozenset({"Constant", "Parameter", "Result"})


def export_openvino(job: ExportJob, *, exclude: Iterable[str] = (),
                    control: Control | None = None) -> ExportedFile:
    """Writes the job's OpenVINO IR at its precision.

    Args:
        job: The artifact to produce.
        exclude: For INT8: ONNX node names whose ops stay float (the gate's mixed-precision
            fallback), besides the decode tail.
        control: For INT8: NNCF's accuracy-controlled quantization (the gate's last
            fallback), judged on this validation subset.

    Returns:
        The ``.xml`` file, with its ``.bin`` as companion.

    Raises:
        ModelError: OpenVINO cannot convert the ONNX model (the message names the op) or NNCF
            cannot quantize it.
    """
    ov = require("openvino", extra="export", purpose="OpenVINO IR export")
    _telemetry_off()
    job.workdir.mkdir(parents=True, exist_ok=True)
    xml = job.target(Format.OPENVINO)
    model = _convert(ov, job)
    details: dict[str, Any] = {"layout": "nchw", "tools": tool_versions("openvino")}
    if job.precision is Precision.INT8:
        from .sensitivity import openvino_names

        tail = float_tail_ov(model) if job.keep_float_tail else []
        floats = openvino_names(exclude, model)
        model = _quantize(job, model, sorted(set(tail) | set(floats)), control)
        details.update(scheme="NNCF INT8 (preset mixed)", float_tail=bool(tail),
                       accuracy_control=control is not None,
                       calibration_images=len(job.calibration or ()),
                       excluded_nodes=sorted(set(exclude)), float_layers=len(floats),
                       tools=tool_versions("openvino", "nncf"))
    ov.save_model(model, str(xml), compress_to_fp16=job.precision is Precision.FP16)
    return ExportedFile(path=xml, companions=(xml.with_suffix(".bin"),), details=details)


def _telemetry_off() -> None:
    """Stops OpenVINO's and NNCF's usage telemetry for this process.

    Without a consent file both send analytics by default, each event from a forked process:
    98 forks in one export of the sample with accuracy control, from a process whose other
    threads (JAX, loaded by the TFLite exporter) warn that fork may deadlock them. An export
    must run offline and must not hang, so edgekit declines for its own process, the answer
    ``opt_in_out --opt_out`` would write to the user's home. NNCF_CI is NNCF's own switch.
    """
    os.environ.setdefault("NNCF_CI", "1")
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:  # not installed: nothing is sent
        return
    declined = opt_in_checker.ConsentCheckResult.DECLINED
    opt_in_checker.OptInChecker.check = lambda *args, **kwargs: declined


def _convert(ov: Any, job: ExportJob) -> Any:
    try:
        # input= pins the shape even for ONNX sources whose file kept symbolic dims.
        # A batch other than 1 stays free (-1) here: NNCF calibrates one image at a time;
        # a fixed N is pinned after the gate (batch.py).
        shape = [1 if job.batch == 1 else -1, *job.spec.shape[1:]]
        return ov.convert_model(str(job.onnx_fp32), input=[shape])
    except Exception as exc:  # the ONNX frontend names the op it cannot take
        raise ModelError(f"OpenVINO cannot convert {job.onnx_fp32.name}: {first_line(exc)}",
                         hint="The op named above has no OpenVINO conversion; export the "
                              "other formats, or replace that op in the model.") from None


def float_tail_ov(model: Any) -> list[str]:
    """Friendly names of the ops between the last weighted op and the model's outputs."""
    tail, stack, seen = [], [r for r in model.get_results()], set()
    while stack:
        op = stack.pop()
        name, kind = op.get_friendly_name(), op.get_type_name()
        if name in seen or kind in WEIGHT_TYPES:
            continue
        seen.add(name)
        if kind not in _NOT_LAYERS:
            tail.append(name)
        stack.extend(value.get_node() for value in op.input_values())
    return tail


def _quantize(job: ExportJob, model: Any, floats: list[str], control: Control | None) -> Any:
    nncf = require("nncf", extra="export", purpose="OpenVINO INT8 quantization")
    if not job.calibration:
        raise ModelError(f"INT8 export of {job.onnx_fp32.name} needs calibration images.",
                         hint="Pass calib= (a folder of images, a video or a dataset).")
    # validate=False: the names were read off this very model; an empty scope is fine.
    scope = nncf.IgnoredScope(names=floats, validate=False)
    try:
        with quiet_logger("nncf"):
            # MIXED (asymmetric activations): SiLU outputs dip below zero, and symmetric int8
            # wastes half its range on them; measured on the sample: -1.29 vs -1.79 mAP
            # points (PERFORMANCE).
            common = dict(preset=nncf.QuantizationPreset.MIXED, ignored_scope=scope,
                          subset_size=len(job.calibration))
            if control is None:
                return nncf.quantize(model, nncf.Dataset(job.calibration), **common)
            from nncf.quantization.advanced_parameters import (
                AdvancedAccuracyRestorerParameters,
            )

            return nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(job.calibration), nncf.Dataset(control.dataset.items),
                validation_fn=_validator(job, control),
                max_drop=control.max_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=control.iterations), **common)
    except ModelError:
        raise
    except Exception as exc:  # NNCF raises its own and OpenVINO's errors
        raise ModelError(f"NNCF cannot quantize {job.onnx_fp32.name}: {first_line(exc)}",
                         hint="Export fp32/fp16 OpenVINO, or ONNX INT8, instead.") from None


# --- the gate's INT8 fallback for OpenVINO ---------------------------------------------------

@dataclass(frozen=True)
class Control:
    """NNCF accuracy control's inputs: the validation subset it judges on, the drop it may
    leave (points), how many layers it may revert at most, the head to score with."""

    dataset: Dataset
    max_drop: float
    output: OutputSpec
    iterations: int


# NNCF's accuracy control re-validates at every reverted layer; a subset and a cap on the
# layers it reverts keep it to minutes (uncapped it ran 18+ minutes on a real-size YOLOv8).
CONTROL_IMAGES = 200
CONTROL_ITERATIONS = 8
# NNCF judges on the subset, the gate on the whole set: a margin keeps a subset that
# flatters the model from ending the search early (seen: full-set drop stayed 1.53 points).
CONTROL_MARGIN = 0.5


def openvino_fallbacks(failure: GateFailure) -> Iterator[Fallback]:
    """``mixed-precision``: the noisiest layers of the export's ranking (measured on an ONNX
    QDQ model: one ranking serves both formats) kept in float through NNCF's ignored scope.
    Then ``nncf-accuracy-control``, last: where the loss is spread thinly over many layers
    (the sample: no single layer matters) a per-layer noise ranking finds no culprit, while
    reverting layers by their measured mAP cost does (measured in make demo: -1.13 as
    exported, -1.22..-1.44 for three ranked candidates). The time budget is checked before
    it starts."""
    from .sensitivity import mixed_precision

    yield from mixed_precision(failure, None)
    dataset = failure.dataset
    control = Control(dataset=dataset.subset(min(len(dataset), CONTROL_IMAGES), seed=0),
                      max_drop=CONTROL_MARGIN * failure.max_drop, output=failure.output,
                      iterations=CONTROL_ITERATIONS)
    yield "nncf-accuracy-control", lambda: export_openvino(
        replace(failure.job, workdir=failure.job.workdir / "accuracy-control"),
        control=control)


def _validator(job: ExportJob, control: Control) -> Any:
    """NNCF's validation_fn: mAP@0.5:0.95 (0-1) of a compiled model on dataset samples."""
    from edgekit.eval import evaluate_detections
    from edgekit.postprocess import postprocess
    from edgekit.preprocess import preprocess

    dataset = control.dataset

    def validate(compiled: Any, samples: Iterable[Any]) -> float:
        items = list(samples)
        results = {}
        for sample in items:
            image = dataset.read_image(sample)
            tensor, box = preprocess(image, job.spec)
            outputs = [np.asarray(v) for v in compiled(tensor).to_tuple()]
            # COCO mAP wants a low score threshold (edgekit eval's default).
            results[sample.image_id] = postprocess(
                outputs[0] if len(outputs) == 1 else outputs, control.output, box,
                image.shape[1], image.shape[0], conf=0.001)
        score = evaluate_detections(results, replace(dataset, items=items)).map50_95
        return 0.0 if np.isnan(score) else float(score)

    return validate


EXPORTER = Exporter(format=Format.OPENVINO, export=export_openvino, tools=("openvino", "nncf"),
                    fallbacks=openvino_fallbacks, pin_batch=pin_openvino)
