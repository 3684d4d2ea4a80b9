"""A bundle directory that is valid after every step: each artifact joins it as it is done.

An export at 640 runs for minutes; one killed for memory (issue 16: 23 GB in the ONNX INT8
fallback) used to lose the OpenVINO artifacts already finished, because the bundle was
renamed into place only at the very end. Here the destination holds a valid bundle from the
moment the fp32 reference is measured, and every later artifact joins it on its own:

- its file (and companions) are copied under a hidden temporary name, then renamed to their
  own name, so a file the manifest lists is never half-written;
- the manifest is written to a temporary file and renamed over ``edgekit.json`` (atomic on
  POSIX), so a reader sees the manifest before or after the artifact, never a torn one;
- an artifact replaced under the same name leaves the manifest first, so the old record
  never describes the new bytes.

The first step stages the reference beside the destination and swaps it in, so an existing
bundle there is replaced only by a valid new one. The measuring scratch of the gate uses the
same class in a temporary directory (``atomic`` makes no difference there, it is just cheap).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.bundle import MANIFEST, Artifact, Bundle, Format, Manifest, Precision, sha256_file
from edgekit.errors import BundleError

__all__ = ["BundleDir", "stage_beside", "swap_into_place"]


class BundleDir:
    """A bundle directory whose manifest is rewritten, atomically, after every change.

    Args:
        path: The directory (created if missing).
        manifest: The manifest to start from.
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path, self.manifest = Path(path), manifest
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_manifest()

    @property
    def bundle(self) -> Bundle:
        """The bundle as it is now (for measuring; not re-verified)."""
        return Bundle(self.path, self.manifest)

    def add_file(self, source: str | Path, *, format: Format, precision: Precision,
                 name: str | None = None, companions: list[str | Path] | tuple = (),
                 accuracy: dict[str, Any] | None = None, **details: Any) -> Artifact:
        """Copies a file (and its companions) in and records it, replacing the artifact of the
        same format and precision if there was one."""
        source = Path(source)
        key = f"{format.value}/{precision.value}"
        if any(a.key == key for a in self.manifest.artifacts):
            # Out of the manifest before its file is overwritten (see the module's note).
            self.update(artifacts=[a for a in self.manifest.artifacts if a.key != key])
        target = self.path / (name or source.name)
        extra = dict(details)
        if companions:
            extra["companions"] = {}
            for companion in map(Path, companions):
                rel = target.parent.relative_to(self.path) / companion.name
                self.copy_in(companion, rel)
                extra["companions"][str(rel)] = {"sha256": sha256_file(self.path / rel),
                                                 "size": (self.path / rel).stat().st_size}
        self.copy_in(source, target.relative_to(self.path))
        artifact = Artifact(format=format, precision=precision,
                            file=str(target.relative_to(self.path)), sha256=sha256_file(target),
                            size=target.stat().st_size, accuracy=accuracy, details=extra)
        self.update(artifacts=[*self.manifest.artifacts, artifact])
        return artifact

    def replace_artifact(self, artifact: Artifact) -> None:
        """Replaces one artifact's record (its accuracy, its details); the file is unchanged."""
        self.update(artifacts=[artifact if a.key == artifact.key else a
                               for a in self.manifest.artifacts])

    def update(self, **changes: Any) -> None:
        """Replaces manifest fields and writes the manifest (atomically)."""
        self.manifest = replace(self.manifest, **changes)
        self._write_manifest()

    def copy_in(self, source: str | Path, name: str | Path) -> Path:
        """Copies ``source`` to ``name`` inside the directory: whole, or not at all."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part-{os.getpid()}")
        try:
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return target

    def write_text(self, name: str, text: str) -> Path:
        """Writes a text file inside the directory atomically (the export report)."""
        target = self.path / name
        temporary = target.with_name(f".{target.name}.part-{os.getpid()}")
        try:
            temporary.write_text(text)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return target

    def _write_manifest(self) -> None:
        self.write_text(MANIFEST, self.manifest.to_json())


def stage_beside(destination: Path) -> Path:
    """A fresh hidden directory next to ``destination`` (same filesystem: renames are atomic).

    Raises:
        BundleError: The parent cannot be written.
    """
    parent = destination.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
        # mkdtemp makes 0700; a bundle is shared (packages, devices): ordinary permissions.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
    except OSError as exc:
        raise BundleError(f"Cannot write a bundle at {destination}: {exc.strerror}.",
                          hint="Choose an output directory you can write to.") from None
    return staging


def swap_into_place(staging: Path, destination: Path) -> None:
    """Renames ``staging`` to ``destination``, replacing a bundle (never anything else) there.

    Raises:
        BundleError: ``destination`` exists and is not a bundle (``staging`` is removed).
    """
    old = None
    if destination.exists():
        if not (destination / MANIFEST).is_file() and any(destination.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(
                f"{destination} exists and is not an edgekit bundle; not overwriting it.",
                hint="Choose another output directory, or empty this one.")
        old = destination.with_name(f".{destination.name}.old-{time.time_ns()}")
        os.replace(destination, old)
    os.replace(staging, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
