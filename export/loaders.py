"""Model sources -> one ``LoadedModel``: a torch module in eval mode, or an ONNX file as-is.

The file type is read from the content, not the suffix: a .pt2 program, a TorchScript archive
and a plain ``torch.save`` checkpoint are all zip files that differ only in what they hold, and
a JPEG renamed ``.onnx`` must be refused before any converter sees it. Pickled checkpoints are
only ever loaded with ``weights_only=True``: unpickling a full model runs arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.bundle import sha256_file
from edgekit.errors import MissingDependencyError, ModelError
from edgekit.modelfile import is_ultralytics_checkpoint

from .shipped import SHIPPED, shipped_names

if TYPE_CHECKING:
    import onnx
    import torch

__all__ = ["LoadedModel", "load_model", "load_weights", "read_onnx", "SAMPLE"]

SAMPLE = "sample"
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ZIP_MAGIC = b"PK\x03\x04"
# Files users mix up with models; named so the error says what the file really is.
_FOREIGN_MAGIC = {
    b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image", b"GIF8": "a GIF image",
    b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive", b"<": "an HTML/XML file",
}
_SHOWN_KEYS = 5  # keys listed per kind of mismatch; a 300-layer model would flood the terminal


@dataclass(frozen=True, kw_only=True)
class LoadedModel:
    """A model ready to export: exactly one of ``module`` and ``onnx_path`` is set.

    Attributes:
        module: A torch module in eval mode (None for an ONNX source).
        onnx_path: The ONNX file of an ONNX source, taken as-is (None for torch sources).
        kind: What the source was: module, pt2, torchscript, factory, onnx, or the shipped
            detector's name (sample, reference).
        source: The source as the user gave it (a path, ``pkg.mod:factory``, a class name).
        source_sha256: sha256 of the source file (the weights file for a factory), or of the
            state dict for an in-memory module.
        description: One line for logs and the manifest.
        labels: Class names the model carries (the sample's config, ONNX metadata), if any.
        imgsz: The model's own (height, width) input size, if it has one.
        head: The output convention the source itself states (an Ultralytics checkpoint
            knows whether its head is end-to-end); None: recognised from the outputs.
    """

    module: Any = None
    onnx_path: Path | None = None
    kind: str
    source: str
    source_sha256: str
    description: str
    labels: list[str] | None = None
    imgsz: tuple[int, int] | None = None
    head: str | None = None

    @property
    def is_onnx(self) -> bool:
        return self.onnx_path is not None


def load_model(source: Any, *, weights: str | Path | None = None,
               imgsz: int | None = None) -> LoadedModel:
    """Loads a model from any supported source.

    Args:
        source: An ``nn.Module``; a path to a ``.pt2`` torch.export program, a TorchScript
            file or an ``.onnx`` file; a ``"package.module:factory"`` string (with
            ``weights``); or the name of a shipped detector (``"sample"``, ``"reference"``:
            :data:`edgekit.export.shipped.SHIPPED`).
        weights: A state dict file (or a checkpoint dict with a ``state_dict``/``model`` key)
            loaded into the module a factory builds; for a shipped detector, a checkpoint
            written by ``samples/train_detector.py``.
        imgsz: Input size, for models built for one size (the sample's anchor grid).

    Returns:
        The loaded model.

    Raises:
        ModelError: The file is missing, truncated, corrupt or not a model; the factory
            cannot be imported; or the weights do not fit the module.
    """
    if isinstance(source, LoadedModel):
        return source
    if _is_module(source):
        _no_weights(weights, type(source).__name__)
        return _from_module(source)
    text = str(source)
    if text in SHIPPED:
        return _from_shipped(text, weights, imgsz)
    path = Path(text).expanduser()
    if not path.exists() and _FACTORY.match(text):
        return _from_factory(text, weights)
    _no_weights(weights, text)
    return _from_file(path)


def _is_module(obj: Any) -> bool:
    # Checked without importing torch: a str or Path source must not pay torch's import cost.
    return any(f"{c.__module__}.{c.__name__}" == "torch.nn.modules.module.Module"
               for c in type(obj).__mro__)


def _no_weights(weights: str | Path | None, source: str) -> None:
    if weights is not None:
        raise ModelError(
            f"A weights file was given for {source}, which carries its own weights.",
            hint="Pass weights only with a 'package.module:factory' source or "
                 f"{shipped_names()}.",
        )


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        error = MissingDependencyError("torch", purpose="exporting PyTorch models")
        # An unpinned `pip install torch` pulls the newest CUDA build (several GB).
        error.hint = "pip install torch==2.13.0 (the CPU wheel; see the README)"
        raise error from exc
    return torch


# --- torch sources -----------------------------------------------------------------------


def _from_module(module: torch.nn.Module, **fields: Any) -> LoadedModel:
    name = type(module).__name__
    defaults = dict(kind="module", source=name, source_sha256=_state_sha256(module),
                    description=f"in-memory torch module {name}")
    return LoadedModel(module=module.eval(), **{**defaults, **fields})


def _state_sha256(module: torch.nn.Module) -> str:
    """Hashes names, shapes and bytes of a module's state: the identity of weights in memory."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        if hasattr(value, "detach"):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{tensor.dtype}{tuple(value.shape)}".encode())
            # Viewed as bytes: numpy has no bfloat16, and the hash needs only the bits.
            digest.update(tensor.view(_torch().uint8).numpy().tobytes())
    return digest.hexdigest()


def _from_file(path: Path) -> LoadedModel:
    if not path.is_file():
        what = "is a directory, not a model file" if path.is_dir() else "does not exist"
        raise ModelError(
            f"{path} {what}.",
            hint="Pass a .pt2, TorchScript or .onnx file, 'package.module:factory' with "
                 f"weights, or {shipped_names()}.",
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror}.") from None
    if not head:
        raise ModelError(f"{path} is empty (0 bytes).", hint="Re-export or re-download it.")
    if head == _ZIP_MAGIC:
        return _from_zip(path)
    _refuse_runtime_format(path)
    foreign = next((what for magic, what in _FOREIGN_MAGIC.items() if head.startswith(magic)),
                   None)
    if foreign:
        raise ModelError(f"{path} is {foreign}, not a model.",
                         hint="Pass the model file (.pt2, TorchScript or .onnx).")
    return _from_onnx(path)


def _refuse_runtime_format(path: Path) -> None:
    """A .tflite or OpenVINO file is a model edgekit runs, not a source it exports from: say
    so, instead of reporting it as a damaged ONNX file (seen with MediaPipe's BlazeFace)."""
    from edgekit.backends import format_of
    from edgekit.bundle import Format

    fmt = format_of(path)
    if fmt is None or fmt is Format.ONNX:
        return
    raise ModelError(
        f"{path} is a {fmt.value} model: edgekit runs it as it is (info, predict, eval, bench, "
        "run), but exports from PyTorch or ONNX sources.",
        hint="For ONNX/OpenVINO/TFLite artifacts with the accuracy gate, convert it to ONNX "
             "first (a .tflite with tflite2onnx or `python -m tf2onnx.convert --tflite`; an "
             "OpenVINO model from the ONNX it was made from) and export the .onnx.")


def _from_zip(path: Path) -> LoadedModel:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(
            f"{path} is a damaged zip archive ({exc}); it is probably truncated.",
            hint="Re-export or re-download the file.",
        ) from None
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in inner or any(n.startswith("models/") for n in inner):
        return _from_pt2(path)
    if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
        return _from_torchscript(path)
    if "data.pkl" in inner and is_ultralytics_checkpoint(path):
        from .ultralytics_ckpt import load_ultralytics

        return load_ultralytics(path)
    if "data.pkl" in inner:
        raise ModelError(
            f"{path} is a torch.save checkpoint (weights or a pickled model), not a program "
            "edgekit can run by itself.",
            hint="Pass 'package.module:factory' that builds the network with this file as "
                 "weights, or save the model with torch.export.save (.pt2) or torch.jit.save.",
        )
    raise ModelError(f"{path} is a zip archive but not a PyTorch model (no program in it).")


def _from_pt2(path: Path) -> LoadedModel:
    torch = _torch()
    try:
        program = torch.export.load(str(path))
        module = program.module()
    except Exception as exc:  # torch raises many untyped errors for damaged archives
        raise ModelError(f"{path} is not a loadable torch.export program: {first_line(exc)}",
                         hint="Re-export it with torch.export.save.") from None
    return LoadedModel(
        module=_eval(module), kind="pt2", source=str(path), source_sha256=sha256_file(path),
        description=f"torch.export program {path.name}", imgsz=_pt2_imgsz(program),
    )


def _eval(module: Any) -> Any:
    # torch.export modules refuse .eval() ("not supported"): they are frozen in the mode they
    # were exported in, so there is nothing to switch.
    try:
        return module.eval()
    except (NotImplementedError, RuntimeError):
        return module


def _pt2_imgsz(program: Any) -> tuple[int, int] | None:
    """A .pt2 program is specialised to its example input: that shape is the model's size."""
    try:
        example = program.example_inputs[0][0]
        shape = tuple(int(d) for d in example.shape)
    except (TypeError, IndexError, AttributeError, ValueError):
        return None
    return (shape[2], shape[3]) if len(shape) == 4 else None


def _from_torchscript(path: Path) -> LoadedModel:
    torch = _torch()
    try:
        with warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript, but users still have these files: loading
            # one is the user's choice, not something to warn them about on every export.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # RuntimeError or pickle errors, depending on the damage
        raise ModelError(f"{path} is not a loadable TorchScript file: {first_line(exc)}",
                         hint="Re-export it with torch.jit.save.") from None
    return LoadedModel(
        module=module.eval(), kind="torchscript", source=str(path),
        source_sha256=sha256_file(path), description=f"TorchScript {path.name}",
    )


def _from_factory(spec: str, weights: str | Path | None) -> LoadedModel:
    module_name, _, attribute = spec.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except ImportError as exc:
        raise ModelError(f"Cannot import '{module_name}' for model '{spec}': {exc}.",
                         hint="Check the module path and that its package is installed.") from None
    except AttributeError:
        raise ModelError(f"'{module_name}' has no attribute '{attribute}' (model '{spec}').",
                         hint="Name a function or class that builds the network.") from None
    if weights is None:
        raise ModelError(f"Model '{spec}' needs a weights file.",
                         hint="Pass weights=PATH (a state dict saved with torch.save).")
    try:
        module = factory()
    except Exception as exc:  # user code: any error is possible, say where it came from
        raise ModelError(f"Calling {spec}() failed: {first_line(exc)}") from None
    if not _is_module(module):
        raise ModelError(f"{spec}() returned {type(module).__name__}, not a torch nn.Module.")
    path = Path(weights).expanduser()
    load_weights(module, path)
    return _from_module(module, kind="factory", source=f"{spec} + {path}",
                        source_sha256=sha256_file(path),
                        description=f"{spec}() with weights {path.name}")


def _from_shipped(name: str, weights: str | Path | None, imgsz: int | None) -> LoadedModel:
    torch = _torch()
    from edgekit.export.models.checkpoint import load_checkpoint

    shipped = SHIPPED[name]
    path = Path(weights).expanduser() if weights else shipped.weights
    if not path.is_file():
        raise ModelError(f"The {name} detector's weights {path} do not exist.",
                         hint=f"Train them with `{shipped.train}` in a source checkout, or "
                              "reinstall edgekit.")
    try:
        # The anchor grid is built for one input size, so the size is fixed at load time.
        module = load_checkpoint(path, imgsz=imgsz)
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign checkpoint, imgsz not a multiple of 32
        raise ModelError(f"Cannot load the {name} detector from {path}: {first_line(exc)}",
                         hint="Pass a checkpoint written by samples/train_detector.py "
                              "and an imgsz that is a multiple of 32.") from None
    return _from_module(
        module, kind=name, source=name if not weights else f"{name} + {path}",
        source_sha256=sha256_file(path), description=f"{shipped.summary} ({path.name})",
        labels=_sample_labels(checkpoint, module.num_classes), imgsz=(module.imgsz,) * 2,
    )


def _sample_labels(checkpoint: Any, num_classes: int) -> list[str] | None:
    """Labels saved with the checkpoint, else the synthetic scenes' classes it was trained on."""
    config = checkpoint.get("config", {}) if isinstance(checkpoint, dict) else {}
    labels = (checkpoint.get("labels") if isinstance(checkpoint, dict) else None) or \
        config.get("labels")
    if not labels:
        from edgekit.data.synth import LABELS

        labels = LABELS if len(LABELS) == num_classes else None
    return list(labels) if labels else None


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Loads a state dict file into ``module``, explaining any mismatch key by key.

    Raises:
        ModelError: The file is missing or unreadable, holds no state dict, or its keys or
            shapes do not fit the module.
    """
    torch = _torch()
    if not path.is_file():
        raise ModelError(f"Weights file {path} does not exist.")
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zips, foreign pickles, non-torch files
        raise ModelError(
            f"Cannot read weights from {path}: {first_line(exc)}",
            hint="Save weights with torch.save(model.state_dict(), PATH). Pickled whole "
                 "models are refused: unpickling them can run arbitrary code.",
        ) from None
    state = _state_dict(checkpoint, path)
    problems = _mismatch(module.state_dict(), state)
    if problems:
        raise ModelError(f"The weights in {path} do not fit {type(module).__name__}: "
                         f"{'; '.join(problems)}.",
                         hint="Check that the factory builds the architecture (and number of "
                              "classes) these weights were trained with.")
    module.load_state_dict(state, strict=True)


def _state_dict(checkpoint: Any, path: Path) -> dict[str, Any]:
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(hasattr(v, "shape")
                                                   for v in checkpoint.values()):
        raise ModelError(f"{path} holds no state dict (expected name -> tensor).")
    # nn.DataParallel / DDP checkpoints prefix every key with "module.".
    if checkpoint and all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k[len("module."):]: v for k, v in checkpoint.items()}
    return checkpoint


def _mismatch(expected: dict[str, Any], given: dict[str, Any]) -> list[str]:
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {list(given[k].shape)} vs {list(expected[k].shape)} in the model"
              for k in expected if k in given and given[k].shape != expected[k].shape]
    return [f"{label} ({len(keys)}): {', '.join(keys[:_SHOWN_KEYS])}"
            + (", ..." if len(keys) > _SHOWN_KEYS else "")
            for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                ("shape mismatches", shapes)) if keys]


# --- ONNX sources ------------------------------------------------------------------------


def _from_onnx(path: Path) -> LoadedModel:
    proto = read_onnx(path)
    dims = onnx_input_dims(proto)
    imgsz = (dims[2], dims[3]) if len(dims) == 4 and all(
        isinstance(d, int) for d in dims[2:]) else None
    return LoadedModel(
        onnx_path=path, kind="onnx", source=str(path), source_sha256=sha256_file(path),
        description=f"ONNX {path.name} (opset {_opset(proto)})", labels=_onnx_labels(proto),
        imgsz=imgsz,
    )


def read_onnx(path: Path, *, full_check: bool = True) -> onnx.ModelProto:
    """Parses and validates an ONNX file, refusing non-models with a message naming the file.

    Raises:
        ModelError: The file is not a (complete, valid) ONNX model.
    """
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("onnx", extra="export", purpose="reading .onnx") from exc
    from google.protobuf.message import DecodeError

    hint = "Re-export or re-download the file; check it is the model and not another file."
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"{path} is not a valid ONNX file (protobuf: {first_line(exc)}); it may "
                         "be truncated or another kind of file.", hint=hint) from None
    # Protobuf parsing is lenient: some foreign bytes parse as an empty message.
    if proto.ir_version <= 0 or not proto.graph.node or not proto.graph.output:
        raise ModelError(f"{path} is not an ONNX model (no IR version or empty graph).",
                         hint=hint)
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
        onnx.checker.check_model(proto, full_check=full_check)
    except Exception as exc:  # ValidationError, missing external data, shape errors
        raise ModelError(f"{path} fails the ONNX checker: {first_line(exc)}", hint=hint) from None
    return proto


def onnx_input_dims(proto: onnx.ModelProto) -> list[int | str]:
    """The first real graph input's dims: ints where static, the symbol's name where not."""
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in inputs[0].type.tensor_type.shape.dim]


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _onnx_labels(proto: onnx.ModelProto) -> list[str] | None:
    """Reads class names from metadata: edgekit's own, or Ultralytics' ``names`` dict."""
    import ast
    import json

    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        if "edgekit.labels" in meta:
            return list(json.loads(meta["edgekit.labels"]))
        if "names" in meta:  # Ultralytics writes str({0: 'person', ...})
            names = ast.literal_eval(meta["names"])
            return [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else None
    except (ValueError, SyntaxError, TypeError, KeyError):
        return None
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an exception: enough to act on, without a library's full dump."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def tool_versions(*packages: str) -> dict[str, str]:
    """Installed versions of the given distributions; missing ones are left out (an ONNX-only
    export runs without torch: record what exists)."""
    from importlib import metadata

    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


@contextmanager
def quiet_logger(name: str | None = None) -> Iterator[None]:
    """Raises a logger to ERROR for a block: converters log progress bars and notes at INFO
    that the export already reports as its own steps (``None``: the root logger)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
