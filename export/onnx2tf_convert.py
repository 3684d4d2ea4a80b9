"""TFLite from ONNX-only sources with onnx2tf (the optional ``onnx2tf`` extra, TensorFlow).

Used when there is no torch module to hand to litert-torch. onnx2tf's traps, from
shared/TOOLCHAIN.md, each handled here:

- It needs TensorFlow (4+ GB) plus tf-keras, onnx-graphsurgeon, sng4onnx and onnxsim, and a
  plain ``pip install onnx2tf`` downgrades numpy, protobuf and onnxruntime: the extra is
  installed with ``--no-deps``, so a missing piece is found here before any work starts.
- It rewrites its input file in place: it gets a copy in the scratch directory.
- Offline it always tries to download a calibration sample, and fails unless a file named
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` sits in its working directory:
  one is written there (from the job's own calibration images when there are any).
- Its float and integer files name their tensors differently: bind by index.

It runs in a subprocess with the scratch directory as working directory: TensorFlow's import
is slow and process-global (logging, threads), and the sample file must be in the cwd.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Layout, Precision
from edgekit.errors import MissingDependencyError, ModelError

from .jobs import ExportedFile, ExportJob
from .loaders import tool_versions
from .tflite import LITERT, check_calibration, read_tensors, unsupported_op

__all__ = ["convert_onnx", "preflight", "convert_kwargs", "prepare_workdir", "output_file",
           "CALIBRATION_SAMPLE", "REQUIRED_MODULES"]

CALIBRATION_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_SAMPLE_SHAPE = (20, 128, 128, 3)
# Import name -> pip distribution, everything onnx2tf imports that --no-deps leaves out.
REQUIRED_MODULES = {
    "tensorflow": "tensorflow", "tf_keras": "tf-keras", "onnx2tf": "onnx2tf",
    "onnx_graphsurgeon": "onnx-graphsurgeon", "sng4onnx": "sng4onnx", "onnxsim": "onnxsim",
}
# onnx2tf writes every variant as <stem>_<suffix>.tflite. "integer_quant" keeps float input
# and output around an int8 body; "full_integer_quant" (int8 in and out) would put the mixed
# box/score output through int8, which destroys the scores.
_SUFFIX = {Precision.FP32: "float32", Precision.FP16: "float16", Precision.INT8: "integer_quant"}
_TOOLS = ("onnx2tf", "tensorflow", "onnx", LITERT.package)
_TIMEOUT_S = 1800
_RUNNER = ("import json, sys\n"
           "import onnx2tf\n"
           "onnx2tf.convert(**json.loads(sys.argv[1]))\n")


def preflight() -> None:
    """Checks every module onnx2tf needs is importable, without importing TensorFlow.

    Raises:
        MissingDependencyError: Names the first missing package and the extra to install.
    """
    for module, package in REQUIRED_MODULES.items():
        if importlib.util.find_spec(module) is None:
            error = MissingDependencyError(
                package, extra="onnx2tf",
                purpose="converting ONNX-only models to TFLite (onnx2tf needs TensorFlow)")
            # A plain install of onnx2tf downgrades numpy/protobuf/onnxruntime.
            error.hint = ("pip install 'edgekit[onnx2tf]' then pip install --no-deps onnx2tf "
                          "(see the README); or export from the PyTorch model, which needs no "
                          "TensorFlow")
            raise error


def prepare_workdir(job: ExportJob) -> tuple[Path, Path | None]:
    """Copies the ONNX file and writes the calibration files into ``job.workdir``.

    Returns:
        (the copy onnx2tf may rewrite, the NHWC calibration ``.npy`` or None).
    """
    source = job.model.onnx_path or job.onnx_fp32
    job.workdir.mkdir(parents=True, exist_ok=True)
    copy = job.workdir / "model.onnx"
    shutil.copyfile(source, copy)
    nhwc = None
    if job.calibration:
        nhwc = np.concatenate([np.asarray(t, np.float32).transpose(0, 2, 3, 1)
                               for t in job.calibration])
        np.save(job.workdir / "calibration_nhwc.npy", nhwc)
    np.save(job.workdir / CALIBRATION_SAMPLE, _placeholder_sample(nhwc))
    return copy, (job.workdir / "calibration_nhwc.npy") if nhwc is not None else None


def _placeholder_sample(nhwc: np.ndarray | None) -> np.ndarray:
    """The 20x128x128x3 file onnx2tf insists on: our own images resized when we have some
    (it is only read when no custom calibration is passed), else mid-grey."""
    if nhwc is None:
        return np.full(_SAMPLE_SHAPE, 0.5, np.float32)
    import cv2

    picks = [nhwc[i % len(nhwc)] for i in range(_SAMPLE_SHAPE[0])]
    return np.stack([cv2.resize(p, _SAMPLE_SHAPE[1:3], interpolation=cv2.INTER_AREA)
                     for p in picks]).astype(np.float32)


def convert_kwargs(job: ExportJob, onnx_copy: Path, calibration: Path | None) -> dict[str, Any]:
    """The keyword arguments for ``onnx2tf.convert`` (JSON-serialisable).

    Args:
        job: The export job.
        onnx_copy: The copy of the ONNX file in the scratch directory.
        calibration: The NHWC calibration ``.npy`` (INT8 only).
    """
    kwargs: dict[str, Any] = {
        "input_onnx_file_path": str(onnx_copy),
        "output_folder_path": str(job.workdir / "onnx2tf"),
        "non_verbose": True,
        # One static [1, 3, H, W] input, as the bundle's spec says.
        "overwrite_input_shape": [f"{job.spec.name}:1,3,{job.spec.height},{job.spec.width}"],
    }
    if job.precision is Precision.INT8:
        kwargs["output_integer_quantized_tflite"] = True
        kwargs["quant_type"] = "per-channel"
        # Calibration tensors are already normalised by the manifest's preprocessing.
        kwargs["custom_input_op_name_np_data_path"] = [
            [job.spec.name, str(calibration), [[[[0.0, 0.0, 0.0]]]], [[[[1.0, 1.0, 1.0]]]]]]
    return kwargs


def output_file(out_dir: Path, onnx_copy: Path, precision: Precision) -> Path:
    """Where onnx2tf writes the file for ``precision``."""
    return out_dir / f"{onnx_copy.stem}_{_SUFFIX[precision]}.tflite"


def convert_onnx(job: ExportJob) -> ExportedFile:
    """Converts the job's ONNX file with onnx2tf and reads the result back.

    Raises:
        MissingDependencyError: TensorFlow/onnx2tf (or a companion) is not installed.
        DatasetError: INT8 without usable calibration tensors.
        ModelError: onnx2tf cannot take an op (named with the file), or LiteRT cannot load
            what it wrote.
    """
    preflight()
    check_calibration(job)
    onnx_copy, calibration = prepare_workdir(job)
    kwargs = convert_kwargs(job, onnx_copy, calibration)
    source = str(job.model.onnx_path or job.onnx_fp32)
    try:
        done = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(kwargs)],
                              cwd=job.workdir, capture_output=True, text=True,
                              timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"onnx2tf did not finish converting {source} in {_TIMEOUT_S} s.") from None
    target = output_file(Path(kwargs["output_folder_path"]), onnx_copy, job.precision)
    if done.returncode != 0 or not target.is_file():
        raise _onnx2tf_error(source, done.stdout + done.stderr)
    details = {"layout": Layout.NHWC.value, "binding": "index",
               "method": f"onnx2tf {_SUFFIX[job.precision]}",
               **read_tensors(target, source=source), "tools": tool_versions(*_TOOLS)}
    if job.precision is Precision.INT8:
        details["calibration_samples"] = len(job.calibration or ())
        # onnx2tf has no per-node float exclusion: the accuracy gate decides on this file.
        details["float_tail"] = []
    return ExportedFile(path=target, details=details)


def _onnx2tf_error(source: str, log: str) -> ModelError:
    op = unsupported_op(log)
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "error" in line.lower()),
                lines[-1] if lines else "no output")
    return ModelError(
        f"onnx2tf cannot convert {'the op ' + op + ' of ' if op else ''}{source}: {last[:300]}",
        hint="Export from the PyTorch model instead (litert-torch needs no TensorFlow), or "
             "replace that op before exporting to ONNX.")
