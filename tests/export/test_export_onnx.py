"""PyTorch/ONNX -> bundle: every source kind, parity, static shapes, atomic failures.

A tiny real detector (two convs and a 1x1 head, [1, 4 + nc, N] at imgsz 64) goes through the
real torch exporter, onnx checker, onnxslim and onnxruntime.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgekit.export import export, load_model  # noqa: E402

from edgekit.bundle import Bundle, Format, sha256_file  # noqa: E402
from edgekit.errors import BundleError, ModelError  # noqa: E402

# Deprecation notices from building the test's own TorchScript/legacy-ONNX fixtures.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
]

IMGSZ = 64
NC = 3
PARITY_TOL = 1e-4


class TinyDetector(torch.nn.Module):
    """Stride-4 toy detector with a YOLOv8-style output [1, 4 + nc, (imgsz / 4) ** 2]."""

    def __init__(self, num_classes: int = NC) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.BatchNorm2d(8), torch.nn.SiLU(),
            torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.SiLU(),
        )
        self.head = torch.nn.Conv2d(16, 4 + num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x)).flatten(2)
        return torch.cat([y[:, :4] * 16, y[:, 4:].sigmoid()], 1)


class Classifier(torch.nn.Module):
    """Not a detector: [1, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


class Drifting(TinyDetector):
    """Python state the trace freezes: eager and ONNX outputs drift apart by whole units."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x) + float(self.calls)


def build_tiny() -> TinyDetector:
    """The factory the ``module:factory`` source names."""
    return TinyDetector()


def _tiny() -> TinyDetector:
    torch.manual_seed(0)
    model = TinyDetector().eval()
    # Non-trivial BN statistics, so a wrong fusion or a train-mode export would show.
    model.body[1].running_mean.uniform_(-0.5, 0.5)
    model.body[1].running_var.uniform_(0.5, 2.0)
    return model


def _example() -> torch.Tensor:
    return torch.zeros(1, 3, IMGSZ, IMGSZ)


@pytest.fixture(scope="module")
def tiny() -> TinyDetector:
    return _tiny()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, tiny: TinyDetector) -> dict[str, Path]:
    """One file of each kind, built once for the module."""
    root = tmp_path_factory.mktemp("sources")
    files = {"pt2": root / "tiny.pt2", "torchscript": root / "tiny.torchscript",
             "weights": root / "tiny_state.pt", "onnx": root / "tiny.onnx"}
    torch.export.save(torch.export.export(tiny, (_example(),)), files["pt2"])
    torch.jit.save(torch.jit.trace(tiny, _example()), files["torchscript"])
    torch.save({"state_dict": tiny.state_dict(), "epoch": 3}, files["weights"])
    export(tiny, root / "seed_bundle", imgsz=IMGSZ, labels=["a", "b", "c"])
    files["onnx"].write_bytes((root / "seed_bundle" / "model.onnx").read_bytes())
    return files


def _graph_input_dims(path: Path) -> list:
    proto = onnx.load(str(path))
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in proto.graph.input[0].type.tensor_type.shape.dim]


def _check_bundle(bundle: Bundle, *, labels: list[str]) -> None:
    again = Bundle.load(bundle.path)  # verifies every artifact's size and sha256
    manifest = again.manifest
    artifact = again.select(format=Format.ONNX)
    assert manifest.labels == labels
    assert manifest.input.shape == (1, 3, IMGSZ, IMGSZ)
    assert manifest.input.name == "images" and manifest.output.name == "output0"
    onnx_file = again.file(artifact)
    assert _graph_input_dims(onnx_file) == [1, 3, IMGSZ, IMGSZ]  # static, for NPUs
    assert artifact.details["opset"] == 17
    assert onnx.load(str(onnx_file)).opset_import[0].version == 17
    parity = manifest.provenance.parity
    assert parity["images"] == 4
    assert parity["max_abs_diff"] < PARITY_TOL <= parity["tolerance"]
    assert len(manifest.provenance.source_sha256) == 64
    assert {"onnx", "onnxruntime", "edgekit"} <= set(manifest.provenance.tools)


def test_module_export_writes_verified_bundle_with_golden(tmp_path: Path, tiny) -> None:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # users see no torch deprecation noise from export
        bundle = export(tiny, tmp_path / "b", imgsz=IMGSZ, labels=["a", "b", "c"],
                        progress=lines.append)
    _check_bundle(bundle, labels=["a", "b", "c"])
    assert bundle.manifest.provenance.parity["reference"] == "torch"
    assert bundle.manifest.artifacts[0].details["simplified"].startswith("onnxslim")
    assert any("parity" in line for line in lines)

    parity = bundle.manifest.provenance.parity
    golden = bundle.path / parity["golden"]
    assert sha256_file(golden) == parity["golden_sha256"]
    with np.load(golden) as data:
        inputs, outputs = data["inputs"], data["outputs"]
    assert inputs.shape == (4, 1, 3, IMGSZ, IMGSZ) and inputs.dtype == np.float32
    assert outputs.shape == (4, 1, 4 + NC, (IMGSZ // 4) ** 2) and outputs.dtype == np.float32
    # The golden outputs are what the torch model computes on the golden inputs.
    with torch.no_grad():
        expected = tiny(torch.from_numpy(inputs[1])).numpy()
    np.testing.assert_allclose(outputs[1], expected, atol=PARITY_TOL)


@pytest.mark.parametrize("kind", ["pt2", "torchscript", "factory", "onnx"])
def test_file_sources_export(tmp_path: Path, sources: dict[str, Path], kind: str) -> None:
    if kind == "factory":
        bundle = export(f"{__name__}:build_tiny", tmp_path / "b", imgsz=IMGSZ,
                        weights=sources["weights"], labels=["a", "b", "c"])
        assert bundle.manifest.provenance.source_sha256 == sha256_file(sources["weights"])
    else:
        # No imgsz: .pt2 and .onnx carry their static input size; TorchScript gets it here.
        imgsz = IMGSZ if kind == "torchscript" else None
        bundle = export(sources[kind], tmp_path / "b", imgsz=imgsz, labels=["a", "b", "c"])
        assert bundle.manifest.provenance.source_sha256 == sha256_file(sources[kind])
    _check_bundle(bundle, labels=["a", "b", "c"])
    if kind == "onnx":
        assert bundle.manifest.provenance.parity["reference"].startswith("onnxruntime")


def test_onnx_source_keeps_labels_from_metadata(tmp_path: Path, sources) -> None:
    bundle = export(sources["onnx"], tmp_path / "b")
    assert bundle.manifest.labels == ["a", "b", "c"]
    assert bundle.manifest.name == "tiny"


def test_dynamic_onnx_is_pinned_to_a_static_shape(tmp_path: Path, tiny) -> None:
    dynamic = tmp_path / "dynamic.onnx"
    torch.onnx.export(tiny, (_example(),), str(dynamic), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch", 2: "h", 3: "w"}, "y": {0: "batch"}})
    assert _graph_input_dims(dynamic)[2] == "h"
    bundle = export(dynamic, tmp_path / "b", imgsz=IMGSZ, labels=["a", "b", "c"])
    assert _graph_input_dims(bundle.file(bundle.manifest.artifacts[0])) == [1, 3, IMGSZ, IMGSZ]
    assert bundle.manifest.input.name == "x"  # the manifest binds the file's real names
    assert bundle.manifest.provenance.parity["max_abs_diff"] < PARITY_TOL


def test_labels_default_to_placeholders_with_a_warning(tmp_path: Path, tiny) -> None:
    with pytest.warns(UserWarning, match="class0..class2"):
        bundle = export(tiny, tmp_path / "b", imgsz=IMGSZ)
    assert bundle.manifest.labels == ["class0", "class1", "class2"]


def test_reexport_replaces_existing_bundle(tmp_path: Path, tiny) -> None:
    out = tmp_path / "b"
    export(tiny, out, imgsz=IMGSZ, labels=["a", "b", "c"], name="first")
    (out / "stale.txt").write_text("from the old bundle")
    bundle = export(tiny, out, imgsz=IMGSZ * 2, labels=["x", "y", "z"], name="second")
    assert Bundle.load(out).manifest.name == "second"
    assert bundle.manifest.input.shape == (1, 3, IMGSZ * 2, IMGSZ * 2)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging/old dirs left


def _jpeg(path: Path) -> Path:
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def _truncated(path: Path, sources, kind: str = "onnx") -> Path:
    data = sources[kind].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_weights(path: Path, _sources) -> Path:
    state = TinyDetector(num_classes=5).state_dict()  # head has 9 outputs, not 7
    state["extra.weight"] = torch.zeros(1)
    del state["body.0.bias"]
    torch.save(state, path)
    return path


BAD_SOURCES = {
    "missing": (lambda tmp, s: tmp / "nowhere.onnx", "nowhere.onnx", "does not exist"),
    "truncated": (lambda tmp, s: _truncated(tmp / "half.onnx", s), "half.onnx", "ONNX"),
    "jpeg": (lambda tmp, s: _jpeg(tmp / "photo.onnx"), "photo.onnx", "JPEG image"),
    "truncated_pt2": (lambda tmp, s: _truncated(tmp / "half.pt2", s, "pt2"), "half.pt2",
                      "truncated"),
    "checkpoint": (lambda tmp, s: s["weights"], "tiny_state.pt", "checkpoint"),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_bad_files_raise_model_error_and_leave_nothing(tmp_path: Path, sources,
                                                       case: str) -> None:
    make, filename, words = BAD_SOURCES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    source = make(inputs, sources)
    with pytest.raises(ModelError) as info:
        export(source, tmp_path / "out" / "b", imgsz=IMGSZ)
    assert filename in str(info.value) and words in str(info.value)
    assert not (tmp_path / "out").exists()


def test_wrong_weights_name_the_keys(tmp_path: Path) -> None:
    weights = _wrong_weights(tmp_path / "wrong.pt", None)
    with pytest.raises(ModelError) as info:
        export(f"{__name__}:build_tiny", tmp_path / "b", imgsz=IMGSZ, weights=weights)
    message = str(info.value)
    assert "wrong.pt" in message
    assert "missing keys (1): body.0.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "head.weight [9, 16, 1, 1] vs [7, 16, 1, 1]" in message
    assert not (tmp_path / "b").exists()


def test_unimportable_factory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no_such_pkg.models"):
        load_model("no_such_pkg.models:build", weights=tmp_path / "w.pt")


def test_non_detection_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"Classifier: .*\[1, 10\]"):
        export(Classifier().eval(), tmp_path / "b", imgsz=IMGSZ)
    with pytest.raises(ModelError, match="(?s)TinyDetector.*check the labels"):
        export(_tiny(), tmp_path / "b", imgsz=IMGSZ, labels=["only", "two"])
    assert list(tmp_path.iterdir()) == []


def test_non_bundle_destination_is_refused_before_work(tmp_path: Path, tiny) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(BundleError, match="not an edgekit bundle"):
        export(tiny, out, imgsz=IMGSZ)
    assert (out / "holiday.jpg").read_bytes() == b"keep me"


def test_parity_failure_refuses_to_write(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="(?s)Drifting differs from torch.*no bundle"):
        export(Drifting().eval(), tmp_path / "b", imgsz=IMGSZ, labels=["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


def test_import_stays_light() -> None:
    code = ("import sys, edgekit.export; heavy = {'torch', 'onnx', 'onnxruntime', 'cv2'}; "
            "print(sorted(heavy & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def _sample_available() -> bool:
    root = Path(__file__).resolve().parents[2]
    return ((root / "export" / "models" / "yolo_lite.py").is_file()
            and (root / "edgekit" / "sample" / "sample_detector.pt").is_file())


@pytest.mark.skipif(not _sample_available(), reason="sample detector weights not built yet")
def test_sample_exports_with_its_labels(tmp_path: Path) -> None:
    from edgekit.data.synth import LABELS

    bundle = export("sample", tmp_path / "sample")
    manifest = Bundle.load(bundle.path).manifest
    assert manifest.labels == list(LABELS)
    assert manifest.input.shape[2:] == (320, 320)
    assert manifest.provenance.parity["max_abs_diff"] < 1e-3
    assert manifest.provenance.parity["golden_bytes"] <= 2_000_000
