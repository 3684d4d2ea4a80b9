"""Shipping a bundle to workers on other nodes: its manifest and files as bytes, once.

The driver packs the bundle it verified; each worker writes the files to a private temporary
folder and loads them with ``Bundle.load``, which checks every sha256 again. So a worker runs
the very bytes the driver hashed, whether or not the bundle's path exists on its node.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

from ..bundle import MANIFEST, Bundle


def passing_artifacts(bundle: Bundle) -> Bundle:
    """The bundle without artifacts that failed the export's accuracy gate (as predict/eval)."""
    kept = [a for a in bundle.manifest.artifacts if (a.accuracy or {}).get("gate") != "failed"]
    return bundle.with_manifest(replace(bundle.manifest, artifacts=kept or
                                        bundle.manifest.artifacts))


def pack(bundle: Bundle) -> dict[str, bytes]:
    """The manifest and every artifact file (OpenVINO's .bin companions too), by bundle path."""
    files = {MANIFEST: bundle.manifest.to_json().encode()}
    for artifact in bundle.manifest.artifacts:
        files[artifact.file] = bundle.file(artifact).read_bytes()
        for name in artifact.details.get("companions", {}):
            files[name] = (bundle.path / name).read_bytes()
    return files


def bundle_sha256(bundle: Bundle) -> str:
    """One digest of the whole bundle: its manifest's, which lists every artifact's sha256.

    Taken over the canonical manifest JSON, so an in-memory bundle (a plain .onnx) has one too.
    """
    return hashlib.sha256(bundle.manifest.to_json().encode()).hexdigest()


def unpack(files: dict[str, bytes]) -> Bundle:
    """Writes a packed bundle into a new temporary folder and loads (verifies) it."""
    root = Path(tempfile.mkdtemp(prefix="edgekit-batch-bundle-"))
    for name, data in files.items():
        target = (root / name).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ValueError(f"bundle file '{name}' leaves the bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return Bundle.load(root)
