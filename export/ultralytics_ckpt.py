"""Ultralytics checkpoints (``best.pt``), read through the user's own ``ultralytics`` package.

edgekit is Apache-2.0 and never depends on ultralytics (AGPL-3.0) nor copies its code: where
the user has it installed, its loader reads the checkpoint, and the detection model it gives
(a torch ``nn.Module``) goes the path every torch source goes. What edgekit takes from the
checkpoint is data: the class names, the training image size, and whether the head is
end-to-end (YOLOv10/YOLO26 one-to-one branch) or YOLOv8-style.

Unpickling a whole model runs arbitrary code, so the checkpoint is loaded with
``weights_only=True`` against Ultralytics' own allow-list of its classes (``safe_only``, in
ultralytics releases since 8.4); an older ultralytics, or a checkpoint that pickles other
types, is refused with what to do instead.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.bundle import sha256_file
from edgekit.errors import MissingDependencyError, ModelError
from edgekit.modelfile import FileOptions, cache_root

from .loaders import LoadedModel, _from_module, _torch, first_line, quiet_logger

__all__ = ["load_ultralytics", "checkpoint_onnx", "HEAD_OF"]

# The edgekit head each kind of Ultralytics Detect head gives in export mode.
HEAD_OF = {False: "yolov8", True: "end2end"}
# Set only where the user has not: an edgekit command must not make ultralytics download
# assets, pip-install modules a checkpoint names, or print its banner to stdout.
_ENV_DEFAULTS = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}
_TASKS = ("detect",)
_ONNX_ALTERNATIVE = ("or export it with Ultralytics (`yolo export model=best.pt format=onnx`) "
                     "and give edgekit the .onnx")


def load_ultralytics(path: Path) -> LoadedModel:
    """The detector in an Ultralytics checkpoint, ready for edgekit's torch export path.

    Raises:
        MissingDependencyError: ultralytics is not installed (or cannot be imported).
        ModelError: the checkpoint cannot be read safely, or is not a detector.
    """
    tasks = _tasks_module(path)
    checkpoint = _read(tasks, path)
    model = checkpoint.get("ema") or checkpoint.get("model")
    if not _is_torch_module(model):
        raise ModelError(f"{path} holds no Ultralytics model (keys: "
                         f"{', '.join(map(str, checkpoint))}).", hint=_ONNX_ALTERNATIVE)
    model = model.float().eval()
    task = getattr(model, "task", None) or _guess_task(tasks, model)
    head = model.model[-1] if hasattr(model, "model") else None
    if task not in _TASKS or type(head).__name__ not in ("Detect", "v10Detect"):
        raise ModelError(
            f"{path} is an Ultralytics '{task}' model with a {type(head).__name__} head; "
            "edgekit exports detectors (boxes, scores, classes).",
            hint="Give a detection checkpoint (Ultralytics task 'detect'); `edgekit info "
                 "--heads` lists the output conventions edgekit decodes.")
    end2end = getattr(head, "one2one_cv2", None) is not None
    if end2end:  # the NMS-free branch: Ultralytics' own export picks it by default
        head.end2end = True
    labels = _labels(getattr(model, "names", None))
    train_args = checkpoint.get("train_args") or {}
    module = _wrap(model, head)
    return _from_module(
        module, kind="ultralytics", source=str(path), source_sha256=sha256_file(path),
        description=f"Ultralytics checkpoint {path.name} ({type(head).__name__} head"
                    f"{', one-to-one branch' if end2end else ''}, "
                    f"{len(labels) if labels else '?'} classes)",
        labels=labels, imgsz=_imgsz(train_args.get("imgsz")), head=HEAD_OF[end2end])


def _tasks_module(path: Path) -> Any:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from ultralytics.nn import tasks
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "ultralytics":  # installed, a dependency missing
            raise _broken(path, exc) from None
        raise MissingDependencyError(
            "ultralytics",
            purpose=f"reading the Ultralytics checkpoint {path.name} (edgekit does not "
                    f"install it: it is AGPL-3.0; {_ONNX_ALTERNATIVE})") from exc
    except Exception as exc:  # installed but broken
        raise _broken(path, exc) from None
    return tasks


def _broken(path: Path, exc: BaseException) -> ModelError:
    # e.g. ultralytics installed without torchvision, whose version it reads at import.
    return ModelError(
        f"ultralytics is installed but cannot be imported to read {path.name}: "
        f"{type(exc).__name__}: {first_line(exc)}",
        hint=f"Repair that environment (pip install ultralytics with its dependencies), "
             f"{_ONNX_ALTERNATIVE}.")


def _read(tasks: Any, path: Path) -> dict[str, Any]:
    loader = getattr(tasks, "torch_safe_load", None)
    if loader is None or "safe_only" not in inspect.signature(loader).parameters or not \
            getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False):
        raise ModelError(
            f"The installed ultralytics cannot load {path.name} weights-only (no "
            "torch_safe_load(safe_only=...)); edgekit never unpickles a whole model.",
            hint=f"pip install -U ultralytics, {_ONNX_ALTERNATIVE}.")
    try:
        with quiet_logger("ultralytics"):
            checkpoint, _ = loader(str(path), safe_only=True)
    except Exception as exc:  # ultralytics raises TypeError, ModuleNotFoundError, ...
        raise ModelError(f"ultralytics cannot read {path} weights-only: {first_line(exc)}",
                         hint=f"Check the file is a complete checkpoint, {_ONNX_ALTERNATIVE}."
                         ) from None
    if not isinstance(checkpoint, dict):
        raise ModelError(f"{path} is not an Ultralytics checkpoint dict.",
                         hint=_ONNX_ALTERNATIVE)
    return checkpoint


def _is_torch_module(obj: Any) -> bool:
    return isinstance(obj, _torch().nn.Module)


def _guess_task(tasks: Any, model: Any) -> str:
    guess = getattr(tasks, "guess_model_task", None)
    try:
        return str(guess(model)) if guess else "unknown"
    except Exception:  # its heuristics raise on foreign modules
        return "unknown"


def _labels(names: Any) -> list[str] | None:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return None


def _imgsz(value: Any) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` train arg: one int (square) or [height, width]."""
    if isinstance(value, int) and value > 0:
        return (value, value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return (value[0], value[-1])
    return None


def _wrap(model: Any, head: Any) -> Any:
    """The model with its head in export mode: one tensor out, the convention ``HEAD_OF``
    names ([1, 4 + nc, N] decoded boxes and sigmoid scores, or [1, K, 6] end-to-end)."""
    torch = _torch()
    head.export, head.format, head.dynamic = True, "onnx", False
    head.xyxy = False  # cx cy w h for the one-to-many branch; the one-to-one gives x1 y1 x2 y2
    head.shape = None  # anchors rebuilt for the traced size

    class UltralyticsDetector(torch.nn.Module):
        """A DetectionModel returning the export-mode tensor; ``fuse`` as Ultralytics'."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x)

        def fuse(self) -> UltralyticsDetector:
            # Conv+BN folded as Ultralytics' own export does (edgekit calls this on a copy
            # and checks parity against the unfused original).
            with quiet_logger("ultralytics"):
                self.inner = self.inner.fuse(verbose=False)
            return self

    return UltralyticsDetector(model).eval()


def checkpoint_onnx(path: Path, *, options: FileOptions) -> tuple[Path, FileOptions]:
    """An fp32 ONNX file of the checkpoint for the commands that run models (info, predict,
    eval, bench, run), and the options that say its head and labels.

    The file is written once by the path ``edgekit export`` takes (head check, parity with
    the checkpoint's own torch outputs) and cached under the checkpoint's sha256 with what
    the checkpoint said (labels, head), so a second command loads neither torch nor
    ultralytics. It is moved into the cache only when complete.
    """
    shape = f"{options.shape[0]}x{options.shape[1]}" if options.shape else "own-size"
    folder = cache_root() / "checkpoints" / f"{sha256_file(path)[:24]}-{shape}"
    target, facts_file = folder / "model.onnx", folder / "checkpoint.json"
    if not (target.is_file() and facts_file.is_file()):
        _convert(path, options, target, facts_file)
    facts = json.loads(facts_file.read_text())
    given = replace(options, labels=options.labels or (
        tuple(facts["labels"]) if facts["labels"] else None))
    if not options.head:
        given = replace(given, head=facts["head"],
                        head_from=f"stated by the source, {facts['description']}")
    return target, given


def _convert(path: Path, options: FileOptions, target: Path, facts_file: Path) -> None:
    from .onnx import export_onnx, recognise
    from .parity import check_parity

    loaded = load_ultralytics(path)
    size = options.shape or loaded.imgsz or (640, 640)
    given = replace(options, head=options.head or loaded.head)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".partial-") as work:
        onnx_file = export_onnx(loaded, Path(work) / target.name, imgsz=size,
                                labels=loaded.labels, file_options=given)
        read = recognise(onnx_file, loaded.labels, loaded.source, given)
        parity = check_parity(loaded, onnx_file, read.input, head=read.output.kind)
        if parity["max_abs_diff"] > parity["tolerance"]:
            raise ModelError(
                f"The ONNX conversion of {path} differs from the checkpoint's torch outputs "
                f"by {parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']:.3g}).",
                hint=_ONNX_ALTERNATIVE)
        facts = {"labels": loaded.labels, "head": loaded.head,
                 "description": loaded.description, "imgsz": list(size),
                 "parity_max_abs_diff": parity["max_abs_diff"]}
        (Path(work) / facts_file.name).write_text(json.dumps(facts))
        os.replace(onnx_file, target)  # the ONNX first: the facts file marks a complete entry
        os.replace(Path(work) / facts_file.name, facts_file)
