"""The model bundle: one directory, one versioned manifest (``edgekit.json``), verified files.

Every runtime reads its preprocessing and output convention from the manifest, never from
guesses in code. Loading verifies each artifact's sha256, so a tampered or truncated file is
refused before any runtime touches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import BundleError, UnknownNameError
from .manifest_schema import read_manifest

MANIFEST = "edgekit.json"
SCHEMA_VERSION = 1


class _Choice(str, Enum):
    """A string enum whose lookup error lists the valid values."""

    @classmethod
    def parse(cls, value: str | _Choice) -> Any:
        try:
            return cls(str(value.value if isinstance(value, Enum) else value).lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise UnknownNameError(
                f"Unknown {cls.__name__.lower()} '{value}'.", hint=f"Use one of: {valid}."
            ) from None

    def __str__(self) -> str:
        return self.value


class Format(_Choice):
    """Artifact file formats."""

    ONNX = "onnx"
    OPENVINO = "openvino"
    TFLITE = "tflite"


class Precision(_Choice):
    """Numeric precision an artifact was exported at."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Layout(_Choice):
    """Memory layout of the image input tensor."""

    NCHW = "nchw"
    NHWC = "nhwc"


class ColorOrder(_Choice):
    """Channel order the model expects."""

    RGB = "rgb"
    BGR = "bgr"


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """How an image becomes the model's input tensor.

    ``tensor = (pixel - mean) / std`` per channel, after letterboxing (aspect kept, padded with
    ``pad_value``) or plain resizing to ``height`` x ``width``. ``origin`` says where these
    facts came from (model metadata, the head's reference preprocessing, flags).
    """

    name: str = "images"
    shape: tuple[int, ...] = (1, 3, 320, 320)
    layout: Layout = Layout.NCHW
    dtype: str = "float32"
    color: ColorOrder = ColorOrder.RGB
    letterbox: bool = True
    pad_value: int = 114
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    origin: str = ""

    @property
    def height(self) -> int:
        return int(self.shape[2] if self.layout is Layout.NCHW else self.shape[1])

    @property
    def width(self) -> int:
        return int(self.shape[3] if self.layout is Layout.NCHW else self.shape[2])


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """The detection head's output convention.

    ``kind`` names the head (``edgekit.heads``: yolov8, yolov5, end2end, yolox, detr, ssd,
    blazeface, scrfd...); ``reason`` says why it was chosen; ``keypoints`` is how many points
    per detection the head gives (0: none).
    """

    kind: str = "yolov8"
    name: str = "output0"
    reason: str = ""
    keypoints: int = 0
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One model file in the bundle, with what was measured about it."""

    format: Format
    precision: Precision
    file: str
    sha256: str
    size: int
    accuracy: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.format.value}/{self.precision.value}"


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where the bundle came from: enough to reproduce or audit it."""

    source: str = ""
    source_sha256: str = ""
    created: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    calibration_sha256: str | None = None
    parity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The content of ``edgekit.json``."""

    name: str
    labels: list[str]
    input: InputSpec = field(default_factory=InputSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    artifacts: list[Artifact] = field(default_factory=list)
    provenance: Provenance = field(default_factory=Provenance)
    task: str = "detect"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> Manifest:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"{where}: schema_version {version!r} is not supported (this edgekit reads "
                f"{SCHEMA_VERSION}).",
                hint="Re-export the bundle with this edgekit version, or upgrade edgekit.",
            )
        try:
            inp = dict(data.get("input", {}))
            inp["shape"] = tuple(inp.get("shape", InputSpec.shape))
            for key in ("mean", "std"):
                if key in inp:
                    inp[key] = tuple(inp[key])
            inp["layout"] = Layout.parse(inp.get("layout", "nchw"))
            inp["color"] = ColorOrder.parse(inp.get("color", "rgb"))
            artifacts = [
                Artifact(
                    **{
                        **a,
                        "format": Format.parse(a["format"]),
                        "precision": Precision.parse(a["precision"]),
                    }
                )
                for a in data.get("artifacts", [])
            ]
            return cls(
                name=data["name"],
                labels=list(data["labels"]),
                task=data.get("task", "detect"),
                input=InputSpec(**_known(InputSpec, inp)),
                output=OutputSpec(**_known(OutputSpec, data.get("output", {}))),
                artifacts=artifacts,
                provenance=Provenance(**_known(Provenance, data.get("provenance", {}))),
            )
        except (KeyError, TypeError, ValueError, UnknownNameError) as exc:
            raise BundleError(
                f"{where} is malformed: {exc}",
                hint="Re-export the bundle; manifests are written by edgekit, not by hand.",
            ) from None


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keeps only the keys a dataclass knows (a newer minor field must not break old readers)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Returns the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Bundle:
    """A verified bundle on disk.

    Use :meth:`load`; it checks the manifest and every artifact's size and sha256.
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> Bundle:
        """Loads and verifies a bundle directory.

        Raises:
            BundleError: the directory or manifest is missing or malformed, or an artifact is
                missing, truncated or altered.
        """
        root = Path(path)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(
                f"{root} is not an edgekit bundle (no {MANIFEST} in it).",
                hint="Create one with `edgekit export MODEL -o DIR`.",
            )
        # Schema first (bounded size and depth, every problem listed): no file is touched yet.
        data = read_manifest(manifest_path)
        bundle = cls(root, Manifest.from_dict(data, where=str(manifest_path)))
        if verify:
            for artifact in bundle.manifest.artifacts:
                bundle.verify_artifact(artifact)
        return bundle

    def file(self, artifact: Artifact) -> Path:
        """Returns the path of an artifact's file, refusing paths that leave the bundle."""
        return self.inside(artifact.file, what="artifact path")

    def inside(self, name: str, *, what: str = "path") -> Path:
        """Resolves a path the manifest names; refuses one that leaves the bundle (symlinks too)."""
        try:
            target = (self.path / name).resolve()
        except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
            raise BundleError(f"{self.path}: {what} {name!r} cannot be resolved: {exc}.") from None
        if not target.is_relative_to(self.path.resolve()):
            raise BundleError(f"{self.path}: {what} '{name}' leaves the bundle.")
        return target

    def verify_artifact(self, artifact: Artifact) -> None:
        """Checks one artifact's presence, size and sha256 (and OpenVINO's .bin companion)."""
        self._verify_file(self.file(artifact), f"artifact '{artifact.file}'", artifact.size,
                          artifact.sha256)
        for name, record in artifact.details.get("companions", {}).items():
            # Companions recorded before sizes were (a bare sha256) are hashed without one.
            size, digest = ((record["size"], record["sha256"]) if isinstance(record, dict)
                            else (None, record))
            target = self.inside(name, what=f"companion of {artifact.file}")
            self._verify_file(target, f"'{name}' (part of {artifact.file})", size, digest)

    def _verify_file(self, target: Path, label: str, size: int | None, digest: str) -> None:
        """Presence, then size (cheap), then sha256: a wrong size is refused before hashing."""
        hint = "The bundle was altered after export: re-export it or restore it from its source."
        if not target.is_file():
            raise BundleError(f"{self.path}: {label} is missing.", hint=hint)
        actual = target.stat().st_size
        if size is not None and actual != size:
            raise BundleError(
                f"{self.path}: {label} is {actual} bytes, the manifest says {size} "
                "(truncated or replaced).",
                hint=hint,
            )
        if sha256_file(target) != digest:
            raise BundleError(
                f"{self.path}: {label} does not match its sha256 (tampered or corrupted).",
                hint=hint,
            )

    def select(
        self,
        *,
        format: str | Format | None = None,
        precision: str | Precision | None = None,
        prefer: list[tuple[Format, Precision]] | None = None,
    ) -> Artifact:
        """Picks one artifact.

        Args:
            format: Only artifacts of this format.
            precision: Only artifacts of this precision.
            prefer: (format, precision) pairs, best first; the first present one wins. Without
                it, fp32 ONNX is preferred, then the manifest's order.

        Raises:
            BundleError: nothing in the bundle matches.
        """
        fmt = Format.parse(format) if format else None
        prec = Precision.parse(precision) if precision else None
        matches = [
            a
            for a in self.manifest.artifacts
            if (fmt is None or a.format is fmt) and (prec is None or a.precision is prec)
        ]
        if not matches:
            have = ", ".join(a.key for a in self.manifest.artifacts) or "none"
            raise BundleError(
                f"{self.path} has no artifact for format={fmt or 'any'} "
                f"precision={prec or 'any'} (it has: {have}).",
                hint="Pick one it has, or export the missing one with `edgekit export`.",
            )
        order = prefer or [(Format.ONNX, Precision.FP32)]
        rank = {pair: i for i, pair in enumerate(order)}
        return min(matches, key=lambda a: rank.get((a.format, a.precision), len(rank)))

    def with_manifest(self, manifest: Manifest) -> Bundle:
        return Bundle(self.path, manifest)


class BundleWriter:
    """Writes a bundle atomically: into a temporary sibling directory, renamed when complete.

    A crash or an error leaves no half-written bundle that looks complete; an existing bundle
    at the destination is replaced only after the new one is fully written.

    Example:
        with BundleWriter(out, manifest) as writer:
            writer.add_file(onnx_path, format=Format.ONNX, precision=Precision.FP32)
    """

    def __init__(self, destination: str | Path, manifest: Manifest) -> None:
        self.destination = Path(destination)
        self.manifest = manifest
        self.staging: Path | None = None

    def __enter__(self) -> BundleWriter:
        parent = self.destination.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.", dir=parent))
            # mkdtemp makes 0700; a bundle is shared (packages, devices): ordinary permissions.
            umask = os.umask(0)
            os.umask(umask)
            self.staging.chmod(0o777 & ~umask)
        except OSError as exc:
            raise BundleError(
                f"Cannot write a bundle at {self.destination}: {exc.strerror}.",
                hint="Choose an output directory you can write to.",
            ) from None
        return self

    def add_file(
        self,
        source: str | Path,
        *,
        format: Format,
        precision: Precision,
        name: str | None = None,
        companions: list[str | Path] = (),
        accuracy: dict[str, Any] | None = None,
        **details: Any,
    ) -> Artifact:
        """Moves a file (and companions, e.g. OpenVINO's .bin) into the bundle and records it."""
        assert self.staging is not None, "use BundleWriter as a context manager"
        source = Path(source)
        target = self.staging / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        extra = dict(details)
        if companions:
            extra["companions"] = {}
            for companion in map(Path, companions):
                rel = target.parent.relative_to(self.staging) / companion.name
                shutil.copyfile(companion, self.staging / rel)
                extra["companions"][str(rel)] = {
                    "sha256": sha256_file(self.staging / rel),
                    "size": (self.staging / rel).stat().st_size,
                }
        artifact = Artifact(
            format=format,
            precision=precision,
            file=str(target.relative_to(self.staging)),
            sha256=sha256_file(target),
            size=target.stat().st_size,
            accuracy=accuracy,
            details=extra,
        )
        self.manifest = replace(
            self.manifest,
            artifacts=[a for a in self.manifest.artifacts if a.key != artifact.key] + [artifact],
        )
        return artifact

    def update(self, **changes: Any) -> None:
        """Replaces manifest fields (provenance, accuracy, ...) before commit."""
        self.manifest = replace(self.manifest, **changes)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.staging is not None
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        (self.staging / MANIFEST).write_text(self.manifest.to_json())
        self._swap_into_place()

    def _swap_into_place(self) -> None:
        assert self.staging is not None
        old = None
        if self.destination.exists():
            if not (self.destination / MANIFEST).is_file() and any(self.destination.iterdir()):
                shutil.rmtree(self.staging, ignore_errors=True)
                raise BundleError(
                    f"{self.destination} exists and is not an edgekit bundle; not overwriting it.",
                    hint="Choose another output directory, or empty this one.",
                )
            old = self.destination.with_name(f".{self.destination.name}.old-{time.time_ns()}")
            os.replace(self.destination, old)
        os.replace(self.staging, self.destination)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
