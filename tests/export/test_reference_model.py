"""The reference detector (YoloV8, YOLOv8n-class): size, output convention, DFL decode, BN
fusion, crops, and the shipped-model registry that makes it `edgekit export reference`."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from edgekit.export.models import YoloV8, build_model, load_checkpoint  # noqa: E402
from edgekit.export.models.yolov8 import Decode  # noqa: E402
from edgekit.export.shipped import SHIPPED  # noqa: E402

IMGSZ = 64


@pytest.fixture(scope="module")
def model() -> YoloV8:
    torch.manual_seed(0)
    return YoloV8(7, imgsz=IMGSZ).eval()


def test_has_yolov8n_size(model: YoloV8) -> None:
    # YOLOv8n is 3.0-3.2 M parameters depending on the class count; >= 3 M is the point.
    n = sum(p.numel() for p in model.parameters())
    assert 3_000_000 <= n <= 3_300_000


def test_output_follows_yolov8_convention(model: YoloV8) -> None:
    with torch.no_grad():
        out = model(torch.rand(2, 3, IMGSZ, IMGSZ))
    n = sum((IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert out.shape == (2, 4 + 7, n)
    scores = out[:, 4:]
    assert ((scores >= 0) & (scores <= 1)).all()
    w, h = out[:, 2], out[:, 3]
    assert (w > 0).all() and (h > 0).all()
    # A flat DFL histogram (the bias prior) puts every side at (reg_max - 1) / 2 strides.
    assert torch.isfinite(out).all() and out[:, 0].max() > IMGSZ / 2


def test_dfl_decode_is_the_expected_distance() -> None:
    decode = Decode(3, 64, reg_max=16)
    n = decode.anchors.shape[-1]
    logits = torch.full((1, 4 * 16, n), -30.0)
    logits[:, 5] = 30.0  # left side (bins 0..15): all mass on bin 5 -> 5 strides
    logits[:, 16] = 30.0  # top side (bins 16..31): all mass on bin 0 -> 0
    ltrb = decode.ltrb(logits)
    assert torch.allclose(ltrb[0, 0], 5.0 * decode.strides[0, 0], atol=1e-4)
    assert torch.allclose(ltrb[0, 1], torch.zeros(n), atol=1e-4)
    # No information (flat histograms): the mean bin, 7.5 strides.
    assert torch.allclose(ltrb[0, 2], 7.5 * decode.strides[0, 0], atol=1e-4)


def test_decode_keeps_yolo_lite_class_name(model: YoloV8) -> None:
    # The TFLite INT8 path keeps the decode tail float by class name.
    decoders = [m for m in model.modules() if type(m).__name__ == "Decode"]
    assert len(decoders) == 1
    assert not any(k.startswith("decode.") for k in model.state_dict())


def test_fuse_keeps_outputs(model: YoloV8) -> None:
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        before = model(x)
        fused = copy.deepcopy(model).fuse()
        after = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(before, after, atol=1e-2, rtol=1e-3)


def test_set_imgsz_regrids_same_weights(model: YoloV8) -> None:
    # Training runs on crops: same weights, a grid for the crop, the same maps where they
    # overlap (fully convolutional up to the decode).
    other = copy.deepcopy(model)
    other.set_imgsz(2 * IMGSZ)
    with torch.no_grad():
        out = other(torch.rand(1, 3, 2 * IMGSZ, 2 * IMGSZ))
    assert out.shape[-1] == sum((2 * IMGSZ // s) ** 2 for s in (8, 16, 32))
    with pytest.raises(ValueError, match="multiple of 32"):
        other.set_imgsz(100)


def test_checkpoint_roundtrip_through_the_architecture_registry(tmp_path, model) -> None:
    path = tmp_path / "m.pt"
    state = {k: v.half() if v.dtype.is_floating_point else v
             for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "config": {**model.config(), "arch": "YoloV8"},
                "metrics": {}}, path)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, YoloV8) and loaded.imgsz == IMGSZ
    assert isinstance(build_model({**model.config(), "arch": "YoloV8"}), YoloV8)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=0.5, rtol=0.02)


def test_shipped_models_are_one_table() -> None:
    assert {"sample", "reference"} <= set(SHIPPED)
    assert SHIPPED["reference"].weights.name == "reference_detector.pt"


@pytest.mark.skipif(not SHIPPED["reference"].weights.is_file(),
                    reason="reference weights not trained yet")
def test_shipped_reference_weights_load() -> None:
    from edgekit.export import load_model

    ckpt = torch.load(SHIPPED["reference"].weights, map_location="cpu", weights_only=True)
    assert ckpt["config"]["arch"] == "YoloV8" and ckpt["config"]["imgsz"] == 640
    assert "mAP50_95" in ckpt["metrics"]
    loaded = load_model("reference", imgsz=IMGSZ)
    assert loaded.kind == "reference" and loaded.imgsz == (IMGSZ, IMGSZ)
    assert loaded.labels == ckpt["config"]["labels"]
    with torch.no_grad():
        out = loaded.module(torch.rand(1, 3, IMGSZ, IMGSZ))
    assert out.shape[:2] == (1, 11) and torch.isfinite(out).all()
