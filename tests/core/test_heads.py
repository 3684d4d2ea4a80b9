"""Heads: decode correctness on hand-built raw outputs with known boxes, recognition, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.base import TensorInfo
from edgekit.bundle import InputSpec, OutputSpec
from edgekit.errors import ModelError, UnknownNameError
from edgekit.heads import HEADS, ModelFacts, make_head, recognise
from edgekit.heads.blazeface import anchors_for
from edgekit.heads.yolox import grid

F32 = np.dtype(np.float32)


def infos(*specs) -> list[TensorInfo]:
    return [TensorInfo(name, tuple(shape), np.dtype(dtype)) for name, shape, dtype in specs]


def facts(outputs, size=32, inputs=None, **kw) -> ModelFacts:
    inputs = inputs or infos(("images", (1, 3, size, size), F32))
    return ModelFacts(inputs=inputs, outputs=outputs, height=size, width=size, **kw)


def head(name: str, outputs, size=32, **spec) -> object:
    shape = (1, 3, size, size)
    return make_head(name, OutputSpec(kind=name, **spec), InputSpec(shape=shape), outputs)


def test_yolov8_decodes_cxcywh_and_recognises() -> None:
    raw = np.zeros((1, 6, 21), np.float32)
    raw[0, :4, 3] = (20, 20, 10, 8)
    raw[0, 5, 3] = 0.9
    outs = infos(("output0", raw.shape, F32))
    assert recognise(facts(outs)).name == "yolov8"
    det = head("yolov8", outs).decode([raw], conf=0.25, iou=0.45)
    np.testing.assert_allclose(det.xyxy, [[15, 16, 25, 24]])
    assert det.class_id.tolist() == [1] and det.confidence[0] == pytest.approx(0.9)


def test_yolov5_score_is_objectness_times_class() -> None:
    n = 3 * (16 + 4 + 1)  # 3 anchors per cell on strides 8/16/32 of 32x32
    raw = np.zeros((1, n, 7), np.float32)
    raw[0, 10] = (10, 12, 4, 6, 0.9, 0.1, 0.8)
    raw[0, 11] = (10, 12, 4, 6, 0.2, 0.0, 0.9)  # objectness below the threshold
    outs = infos(("output0", raw.shape, F32))
    choice = recognise(facts(outs))
    assert choice.name == "yolov5" and "3 anchors per cell" in choice.reason
    det = head("yolov5", outs).decode([raw], conf=0.25, iou=0.45)
    np.testing.assert_allclose(det.xyxy, [[8, 9, 12, 15]])
    assert det.class_id.tolist() == [1] and det.confidence[0] == pytest.approx(0.72)


def test_yolox_decodes_raw_offsets_on_the_grid() -> None:
    cells, strides = grid(32, 32)
    raw = np.zeros((1, len(cells), 7), np.float32)
    row = 2 * 4 + 1  # stride 8 (a 4x4 grid at 32x32), cell x=1, y=2
    raw[0, row] = (0.5, 0.5, 0.0, np.log(2.0), 0.9, 0.0, 1.0)
    outs = infos(("output", raw.shape, F32))
    assert recognise(facts(outs)).name == "yolox"
    det = head("yolox", outs).decode([raw], conf=0.25, iou=0.45)
    # centre (1.5 * 8, 2.5 * 8) = (12, 20); size (8, 16)
    np.testing.assert_allclose(det.xyxy, [[8, 12, 16, 28]])
    assert strides[row, 0] == 8
    raw[0, row, 2:4] = (40, 40)  # pixel sizes: an export with its decode, read as raw
    with pytest.raises(ModelError, match="yolox-decoded"):
        head("yolox", outs).decode([raw], conf=0.25, iou=0.45)
    decoded = head("yolox-decoded", outs).decode([raw], conf=0.25, iou=0.45)
    np.testing.assert_allclose(decoded.xyxy, [[-19.5, -19.5, 20.5, 20.5]])


def test_end2end_thresholds_without_nms() -> None:
    raw = np.array([[[1, 2, 11, 12, 0.9, 2], [1, 2, 11, 12, 0.8, 2], [0, 0, 5, 5, 0.1, 0]]],
                   np.float32)
    outs = infos(("output0", raw.shape, F32))
    assert recognise(facts(outs)).name == "end2end"
    det = head("end2end", outs).decode([raw], conf=0.25, iou=0.45)
    assert len(det) == 2  # overlapping boxes both kept: the model already suppressed
    assert det.class_id.tolist() == [2, 2]


def test_detr_binds_by_name_when_shapes_collide() -> None:
    boxes = np.zeros((1, 5, 4), np.float32)
    logits = np.full((1, 5, 4), -9.0, np.float32)  # 3 classes + 1: the same shape as boxes
    boxes[0, 2] = (0.5, 0.5, 0.25, 0.5)
    logits[0, 2, 3] = 4.0
    # logits first, boxes second: position would read them the wrong way round
    outs = infos(("labels", logits.shape, F32), ("dets", boxes.shape, F32))
    assert recognise(facts(outs)).name == "detr"
    det = head("detr", outs).decode([logits, boxes], conf=0.5, iou=0.45)
    np.testing.assert_allclose(det.xyxy, [[12, 8, 20, 24]])
    assert det.class_id.tolist() == [3]
    assert det.confidence[0] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_rtdetr_triple_with_target_sizes() -> None:
    inputs = infos(("images", (1, 3, 32, 32), F32), ("orig_target_sizes", (1, 2), np.int64))
    outs = infos(("scores", (1, 4), F32), ("labels", (1, 4), np.int64),
                 ("boxes", (1, 4, 4), F32))
    assert recognise(facts(outs, inputs=inputs)).name == "detr"
    h = head("detr", outs)
    assert h.extra_inputs()["orig_target_sizes"].tolist() == [[32, 32]]
    scores = np.array([[0.9, 0.1, 0.8, 0.0]], np.float32)
    labels = np.array([[1, 0, 2, 0]], np.int64)
    boxes = np.tile(np.array([2, 3, 10, 12], np.float32), (1, 4, 1))
    det = h.decode([scores, labels, boxes], conf=0.5, iou=0.45)
    assert det.class_id.tolist() == [1, 2]
    np.testing.assert_allclose(det.xyxy[0], [2, 3, 10, 12])


@pytest.mark.parametrize("names", [
    ("detection_scores", "detection_boxes", "num_detections", "detection_classes"),
    ("TFLite_Detection_PostProcess:2", "TFLite_Detection_PostProcess",
     "TFLite_Detection_PostProcess:3", "TFLite_Detection_PostProcess:1"),
    ("a", "b", "c", "d"),  # unnamed: classes told from scores by their values
])
def test_ssd_binds_in_any_order(names) -> None:
    scores = np.array([[0.9, 0.6, 0.3]], np.float32)
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0, 0, 0.1, 0.1]]],
                     np.float32)
    count = np.array([2], np.float32)
    classes = np.array([[3.0, 0.0, 1.0]], np.float32)
    outs = infos((names[0], (1, 3), F32), (names[1], (1, 3, 4), F32), (names[2], (1,), F32),
                 (names[3], (1, 3), F32))
    assert recognise(facts(outs, size=100)).name == "ssd"
    det = head("ssd", outs, size=100).decode([scores, boxes, count, classes], conf=0.5, iou=0.5)
    assert det.class_id.tolist() == [3, 0]
    np.testing.assert_allclose(det.xyxy[0], [20, 10, 60, 50], rtol=1e-6)


def test_blazeface_anchor_decode_keypoints_and_weighted_nms() -> None:
    anchors = anchors_for(128, 128, 896)
    assert anchors is not None and len(anchors) == 896
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    assert len(anchors_for(64, 64, 224)) == 224  # same graph at another input size
    reg = np.zeros((1, 896, 16), np.float32)
    score = np.full((1, 896, 1), -10.0, np.float32)
    # anchors 0 and 1 share the centre (4, 4) px: two overlapping detections merged by weight
    reg[0, 0, :4] = (10, 10, 20, 20)
    reg[0, 1, :4] = (12, 10, 20, 20)
    reg[0, 0, 4:6] = (1, 2)
    reg[0, 1, 4:6] = (3, 2)
    score[0, 0], score[0, 1] = 3.0, 3.0
    outs = infos(("regressors", reg.shape, F32), ("classificators", score.shape, F32))
    choice = recognise(facts(outs, size=128))
    assert choice.name == "blazeface" and "6 keypoints" in choice.reason
    h = head("blazeface", outs, size=128, iou_threshold=0.3)
    det = h.decode([reg, score], conf=0.5, iou=0.3)
    assert len(det) == 1 and h.num_keypoints == 6
    np.testing.assert_allclose(det.xyxy, [[5, 4, 25, 24]], atol=1e-5)  # mean of the two
    np.testing.assert_allclose(det.keypoints[0, 0], [6, 6], atol=1e-5)
    assert det.keypoints.shape == (1, 6, 2)


def test_scrfd_strides_bound_by_shape_in_any_order() -> None:
    rows = {8: 32, 16: 8, 32: 2}  # 32x32: 16, 4 and 1 cells, 2 anchors each
    raw, specs = [], []
    for stride, n in reversed(rows.items()):  # an order that is not SCRFD's own
        for role, d in (("kps", 10), ("score", 1), ("bbox", 4)):
            array = np.zeros((n, d), np.float32)
            if stride == 8:
                if role == "score":
                    array[11, 0] = 0.95  # cell 5 (x=1, y=1), second anchor
                if role == "bbox":
                    array[11] = (0.5, 0.5, 1.0, 1.0)
                if role == "kps":
                    array[11, :2] = (0.25, 0.5)
            raw.append(array)
            specs.append((f"{role}_{stride}", array.shape, F32))
    outs = infos(*specs)
    assert recognise(facts(outs)).name == "scrfd"
    det = head("scrfd", outs).decode(raw, conf=0.5, iou=0.4)
    np.testing.assert_allclose(det.xyxy, [[4, 4, 16, 16]])  # centre (8, 8) px
    np.testing.assert_allclose(det.keypoints[0, 0], [10, 12])


def test_blazeface_outputs_are_never_read_as_yolo() -> None:
    outs = infos(("regressors", (1, 896, 16), F32), ("classificators", (1, 896, 1), F32))
    assert recognise(facts(outs, size=128)).name == "blazeface"
    with pytest.raises(ModelError, match="do not fit the 'yolov8' head"):
        head("yolov8", outs, size=128)


def test_no_head_fits_lists_outputs_and_heads() -> None:
    outs = infos(("maps", (1, 1, 32, 32), F32))  # a text detector's segmentation map
    with pytest.raises(ModelError) as err:
        recognise(facts(outs))
    text = str(err.value)
    assert "'maps' [1, 1, 32, 32]" in text and "blazeface" in text and "--head" in text


def test_unknown_head_name_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="yolov8"):
        recognise(facts(infos(("o", (1, 6, 21), F32))), name="yolo99")


def test_impossible_scores_and_flat_boxes_are_errors() -> None:
    raw = np.zeros((1, 6, 21), np.float32)
    raw[0, :4, :5] = np.array([20, 20, 10, 8], np.float32)[:, None]
    raw[0, 4, :5] = 196.9  # a BlazeFace regressor read as a score
    with pytest.raises(ModelError, match="scores in"):
        head("yolov8", infos(("o", raw.shape, F32))).decode([raw], conf=0.25, iou=0.45)
    raw[0, 4] = 0.9
    raw[0, 3] = 0.0  # zero-height boxes everywhere
    with pytest.raises(ModelError, match="zero or negative area"):
        head("yolov8", infos(("o", raw.shape, F32))).decode([raw], conf=0.25, iou=0.45)


def test_every_head_is_registered_and_documented() -> None:
    assert {"yolov8", "yolov5", "end2end", "yolox", "detr", "ssd", "blazeface",
            "scrfd"} <= set(HEADS)
    for name in HEADS:
        cls = HEADS.load(name)
        assert cls.name == name and cls.summary
