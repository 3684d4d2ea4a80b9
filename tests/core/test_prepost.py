"""Pre- and post-processing: letterbox geometry, tensor layout, decode and class-aware NMS."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgekit.bundle import ColorOrder, InputSpec, Layout, OutputSpec
from edgekit.errors import DatasetError, ModelError
from edgekit.postprocess import check_yolo_output, decode, nms, postprocess
from edgekit.preprocess import preprocess, resize_image, to_tensor

SPEC = replace(InputSpec(), shape=(1, 3, 64, 64))


def test_letterbox_keeps_aspect_and_pads_centred() -> None:
    image = np.full((32, 64, 3), 200, np.uint8)  # 2:1 landscape
    resized, box = resize_image(image, SPEC)
    assert resized.shape == (64, 64, 3)
    assert (box.scale_x, box.scale_y, box.pad_x, box.pad_y) == (1.0, 1.0, 0.0, 16.0)
    assert (resized[:16] == 114).all() and (resized[48:] == 114).all()
    assert (resized[16:48] == 200).all()


def test_boxes_map_back_to_the_original() -> None:
    image = np.zeros((300, 500, 3), np.uint8)
    _, box = resize_image(image, SPEC)
    original = np.array([[50, 60, 250, 290]], np.float32)
    in_input = original.copy()
    in_input[:, 0::2] = original[:, 0::2] * box.scale_x + box.pad_x
    in_input[:, 1::2] = original[:, 1::2] * box.scale_y + box.pad_y
    np.testing.assert_allclose(box.to_original(in_input, 500, 300), original, atol=1e-4)


def test_tensor_is_rgb_nchw_scaled() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    tensor, _ = preprocess(image, SPEC)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert tensor[0, 2].max() == 1.0 and tensor[0, 0].max() == 0.0  # blue is channel 2 in RGB
    bgr_nhwc = replace(
        SPEC,
        shape=(1, 64, 64, 3),
        layout=Layout.NHWC,
        color=ColorOrder.BGR,
        mean=(255.0, 0.0, 0.0),
        std=(1.0, 2.0, 4.0),
    )
    tensor, _ = preprocess(image, bgr_nhwc)
    assert tensor.shape == (1, 64, 64, 3)
    assert tensor[0, 0, 0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8, 3), np.float32),
        np.zeros((0, 8, 3), np.uint8),
    ],
)
def test_bad_images_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(DatasetError):
        preprocess(bad, SPEC)


def head(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3) -> np.ndarray:
    out = np.zeros((1, 4 + nc, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + cls, i] = score
    return out


def test_decode_converts_cxcywh_and_thresholds() -> None:
    dets = decode(head([(10, 20, 4, 6, 1, 0.9), (30, 30, 4, 4, 0, 0.1)]), OutputSpec())
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [8, 17, 12, 23])
    assert dets.class_id.tolist() == [1] and dets.confidence[0] == pytest.approx(0.9)


def test_nms_is_class_aware_and_sorted() -> None:
    rows = [
        (10, 10, 10, 10, 0, 0.8),
        (10.5, 10, 10, 10, 0, 0.9),  # same class: one survives
        (10, 10, 10, 10, 1, 0.7),
    ]  # other class, same place: kept
    dets = decode(head(rows), OutputSpec())
    assert dets.confidence.tolist() == pytest.approx([0.9, 0.7])
    assert dets.class_id.tolist() == [0, 1]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, int), 0.5).size == 0


def test_postprocess_maps_to_original_and_clips() -> None:
    image_w, image_h = 128, 64  # letterboxed into 64x64: scale 0.5, pad_y 16
    _, box = resize_image(np.zeros((image_h, image_w, 3), np.uint8), SPEC)
    dets = postprocess(
        head([(32, 32, 20, 10, 2, 0.95), (62, 30, 10, 10, 2, 0.9)]),
        OutputSpec(),
        box,
        image_w,
        image_h,
    )
    np.testing.assert_allclose(dets.xyxy[0], [44, 22, 84, 42])
    assert dets.xyxy[:, 2].max() <= image_w


def test_non_detection_output_is_refused() -> None:
    with pytest.raises(ModelError, match=r"\[1, 7, N\]"):
        check_yolo_output((1, 10), 3)


def test_fast_nchw_path_matches_the_general_formula() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for color in (ColorOrder.RGB, ColorOrder.BGR):
        spec = replace(SPEC, color=color, mean=(10.0, 20.0, 30.0), std=(2.0, 2.0, 2.0))
        tensor, _ = preprocess(image, spec)
        resized, _ = resize_image(image, spec)
        ordered = resized[..., ::-1] if color is ColorOrder.RGB else resized
        expected = ((ordered.astype(np.float32) - np.float32([10, 20, 30])) / 2).transpose(2, 0, 1)
        np.testing.assert_allclose(tensor[0], expected, atol=1e-5)


@pytest.mark.parametrize("color", [ColorOrder.RGB, ColorOrder.BGR])
@pytest.mark.parametrize("mean", [(0.0, 0.0, 0.0), (123.7, 116.3, 103.5)])
@pytest.mark.parametrize("layout", [Layout.NCHW, Layout.NHWC])
def test_to_tensor_matches_the_formula_on_every_path(color, mean, layout) -> None:
    """Each fast path (planes scaled in place, OpenCV's blob) gives exactly what the manifest's
    formula says: (pixel - mean) / std, channels in the spec's order and layout."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    shape = (1, 3, 48, 64) if layout is Layout.NCHW else (1, 48, 64, 3)
    spec = InputSpec(shape=shape, color=color, mean=mean, layout=layout)
    pixels = image[..., ::-1] if color is ColorOrder.RGB else image
    want = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(spec.std)
    if layout is Layout.NCHW:
        want = want.transpose(2, 0, 1)
    got = to_tensor(image, spec)
    assert got.shape == shape and got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-5)
