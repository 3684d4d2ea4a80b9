"""YoloLite: the YOLOv8 output convention, BN fusion, and the shipped sample weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.export.models.checkpoint import load_checkpoint  # noqa: E402
from edgekit.export.models.yolo_lite import (  # noqa: E402
    SAMPLE_WEIGHTS,
    Decode,
    YoloLite,
    build_sample_detector,
)

IMGSZ = 64


@pytest.fixture(scope="module")
def model() -> YoloLite:
    torch.manual_seed(0)
    return YoloLite(7, width=0.25, imgsz=IMGSZ).eval()


def test_output_follows_yolov8_convention(model: YoloLite) -> None:
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        out = model(x)
    n = sum((IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert out.shape == (2, 4 + 7, n)
    scores = out[:, 4:]
    assert ((scores >= 0) & (scores <= 1)).all()
    cx, cy, w, h = out[:, 0], out[:, 1], out[:, 2], out[:, 3]
    assert (w > 0).all() and (h > 0).all()
    # Pixels, not 0..1: centres spread over the input and sides of a few strides at init.
    assert cx.max() > IMGSZ / 2 and cy.max() > IMGSZ / 2 and w.max() > 8
    assert (cx > -IMGSZ).all() and (cx < 2 * IMGSZ).all()


def test_decode_is_its_own_module(model: YoloLite) -> None:
    decoders = [m for m in model.modules() if isinstance(m, Decode)]
    assert len(decoders) == 1 and type(decoders[0]).__name__ == "Decode"
    # Grid buffers depend on imgsz only, so they must not end up in the weights.
    assert not any(k.startswith("decode.") for k in model.state_dict())


def test_fuse_keeps_outputs(model: YoloLite) -> None:
    import copy

    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        before = model(x)
        fused = copy.deepcopy(model).fuse()
        after = fused(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(before, after, atol=1e-3, rtol=1e-3)


def test_rejects_imgsz_not_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        YoloLite(7, imgsz=100)


def test_checkpoint_roundtrip(tmp_path, model: YoloLite) -> None:
    path = tmp_path / "m.pt"
    state = {k: v.half() if v.dtype.is_floating_point else v
             for k, v in model.state_dict().items()}
    # No "arch" key: checkpoints from before the architecture registry are YoloLite.
    torch.save({"state_dict": state, "config": model.config(), "metrics": {}}, path)
    loaded = load_checkpoint(path)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=0.5, rtol=0.02)


@pytest.mark.skipif(not SAMPLE_WEIGHTS.is_file(), reason="sample weights not trained yet")
def test_sample_weights_load() -> None:
    ckpt = torch.load(SAMPLE_WEIGHTS, map_location="cpu", weights_only=True)
    assert ckpt["config"]["num_classes"] == len(ckpt["config"]["labels"]) == 7
    assert "mAP50" in ckpt["metrics"]
    detector = build_sample_detector(imgsz=IMGSZ)
    assert not detector.training
    assert sum(p.numel() for p in detector.parameters()) < 1_500_000
    with torch.no_grad():
        out = detector(torch.rand(1, 3, IMGSZ, IMGSZ))
    assert out.shape[:2] == (1, 11) and torch.isfinite(out).all()
