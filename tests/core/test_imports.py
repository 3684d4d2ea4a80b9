"""`import edgekit` stays light, and the public API is exactly what __all__ says."""

import subprocess
import sys

import edgekit

HEAVY = ("torch", "onnxruntime", "openvino", "tensorflow", "cv2", "ai_edge_litert", "onnx")


def test_import_edgekit_loads_no_heavy_module() -> None:
    code = (
        "import sys, edgekit, edgekit.backends, edgekit.registry, edgekit.bundle\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_loads_no_runtime() -> None:
    code = (
        "import sys\nfrom edgekit.cli import cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_matches_all() -> None:
    expected = {
        "__version__",
        "Artifact",
        "BackendOptions",
        "Bundle",
        "BundleError",
        "BundleWriter",
        "ColorOrder",
        "DatasetError",
        "Detections",
        "Detector",
        "EdgekitError",
        "Format",
        "Frame",
        "InputSpec",
        "Layout",
        "Manifest",
        "MissingDependencyError",
        "ModelError",
        "OutputSpec",
        "Precision",
        "Provenance",
        "evaluate",
        "load_backend",
        "load_dataset",
        "open_bundle",
    }
    assert set(edgekit.__all__) == expected
    for name in edgekit.__all__:
        assert getattr(edgekit, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError):
        _ = edgekit.NoSuchThing
