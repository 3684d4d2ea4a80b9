"""OpenVINO IR artifacts (``.xml`` + ``.bin``) at fp32, fp16 and INT8, from the fp32 ONNX.

- fp32/fp16: ``openvino.convert_model`` on the static-shape ONNX (NPUs refuse dynamic
  shapes), saved with ``compress_to_fp16`` off or on. fp16 IR stores fp16 weights; the CPU
  still computes at the precision the runtime is told (edgekit says f32 explicitly).
- INT8: NNCF post-training quantization on the converted model, calibrated on the job's
  preprocessed tensors, with the decode/concat tail in NNCF's ignored scope (INT8 of one
  tensor mixing pixel boxes and 0..1 scores destroys the scores, shared/TOOLCHAIN.md). With a
  validation set, :func:`quantize_with_accuracy_control` reverts the layers that cost the most
  mAP until the drop is within ``max_drop``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from edgekit.bundle import Format, OutputSpec, Precision
from edgekit.data.dataset import Dataset
from edgekit.errors import ModelError, require

from .jobs import ExportedFile, Exporter, ExportJob, Fallback, GateFailure
from .loaders import first_line, quiet_logger, tool_versions

__all__ = ["export_openvino", "float_tail_ov", "WEIGHT_TYPES", "EXPORTER"]

# OpenVINO op types that carry weights: the float tail is what lies between them and the output.
WEIGHT_TYPES = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                          "MatMul"})
_NOT_LAYERS = frozenset({"Constant", "Parameter", "Result"})


def export_openvino(job: ExportJob, *, validation: Dataset | None = None,
                    max_drop: float | None = None,
                    output: OutputSpec | None = None) -> ExportedFile:
    """Writes the job's OpenVINO IR at its precision.

    Args:
        job: The artifact to produce.
        validation: For INT8: a labelled dataset; with ``max_drop`` it turns on NNCF's
            accuracy-controlled quantization (the gate's fallback).
        max_drop: Largest mAP@0.5:0.95 drop allowed, in points (0-100 scale).
        output: The detection head's convention, for scoring the validation set.

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
        tail = float_tail_ov(model) if job.keep_float_tail else []
        controlled = validation is not None and max_drop is not None
        model = _quantize(job, model, tail, validation if controlled else None, max_drop,
                          output or OutputSpec())
        details.update(scheme="NNCF INT8 (preset mixed)", float_tail=bool(tail),
                       calibration_images=len(job.calibration or ()),
                       accuracy_control=controlled, max_drop=max_drop if controlled else None,
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
        return ov.convert_model(str(job.onnx_fp32), input=[list(job.spec.shape)])
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


def _quantize(job: ExportJob, model: Any, tail: list[str], validation: Dataset | None,
              max_drop: float | None, output: OutputSpec) -> Any:
    nncf = require("nncf", extra="export", purpose="OpenVINO INT8 quantization")
    if not job.calibration:
        raise ModelError(f"INT8 export of {job.onnx_fp32.name} needs calibration images.",
                         hint="Pass calib= (a folder of images, a video or a dataset).")
    calibration = nncf.Dataset(job.calibration)
    # validate=False: the tail search already read names off this very model; a model
    # without a tail (keep_float_tail off) passes an empty scope.
    scope = nncf.IgnoredScope(names=tail, validate=False)
    # MIXED (asymmetric activations): SiLU outputs dip below zero, and symmetric int8 wastes
    # half its range on them; measured on the sample: -1.29 vs -1.79 mAP points (PERFORMANCE).
    common = dict(preset=nncf.QuantizationPreset.MIXED, ignored_scope=scope,
                  subset_size=len(job.calibration))
    try:
        with quiet_logger("nncf"):
            if validation is None:
                return nncf.quantize(model, calibration, **common)
            return nncf.quantize_with_accuracy_control(
                model, calibration, nncf.Dataset(validation.items),
                validation_fn=_validator(job, validation, output),
                max_drop=float(max_drop) / 100.0, drop_type=nncf.DropType.ABSOLUTE, **common)
    except ModelError:
        raise
    except Exception as exc:  # NNCF raises its own and OpenVINO's errors
        raise ModelError(f"NNCF cannot quantize {job.onnx_fp32.name}: {first_line(exc)}",
                         hint="Export fp32/fp16 OpenVINO, or ONNX INT8, instead.") from None


def _validator(job: ExportJob, dataset: Dataset, output: OutputSpec) -> Any:
    """NNCF's validation_fn: mAP@0.5:0.95 (0-1) of a compiled model on dataset samples."""
    from edgekit.eval import evaluate_detections
    from edgekit.postprocess import postprocess
    from edgekit.preprocess import preprocess

    def validate(compiled: Any, samples: Iterable[Any]) -> float:
        items = list(samples)
        results = {}
        for sample in items:
            image = dataset.read_image(sample)
            tensor, box = preprocess(image, job.spec)
            raw = np.asarray(compiled(tensor)[0])
            # COCO mAP wants a low score threshold (edgekit eval's default).
            results[sample.image_id] = postprocess(raw, replace(output, conf_threshold=0.001),
                                                   box, image.shape[1], image.shape[0])
        score = evaluate_detections(results, replace(dataset, items=items)).map50_95
        return 0.0 if np.isnan(score) else float(score)

    return validate


# --- the gate's INT8 fallback for OpenVINO ---------------------------------------------------

# NNCF's accuracy control re-validates many times; a subset keeps it to minutes.
CONTROL_IMAGES = 200
CONTROL_MARGIN = 0.5


def openvino_fallbacks(failure: GateFailure) -> Iterator[Fallback]:
    """``nncf-accuracy-control``: NNCF reverts layers by their measured mAP cost until the
    drop is within the gate's ``max_drop``."""
    dataset = failure.dataset
    subset = dataset.subset(min(len(dataset), CONTROL_IMAGES), seed=0)
    # NNCF judges the drop on the subset; the gate on the whole set. A margin keeps a
    # subset that flatters the model from ending the search early (seen: the search
    # stopped at once and the full-set drop stayed 1.53 points).
    yield "nncf-accuracy-control", lambda: export_openvino(
        replace(failure.job, workdir=failure.job.workdir / "accuracy-control"),
        validation=subset, max_drop=CONTROL_MARGIN * failure.max_drop, output=failure.output)


EXPORTER = Exporter(format=Format.OPENVINO, export=export_openvino, tools=("openvino", "nncf"),
                    fallbacks=openvino_fallbacks)
