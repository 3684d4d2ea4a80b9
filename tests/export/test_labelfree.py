"""The accuracy gate without labels: footage in, each artifact scored against fp32's own
detections, the report saying so."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

pytest.importorskip("torch")

from edgekit.export import export  # noqa: E402
from edgekit.export.labelfree import is_unlabelled, read_frames  # noqa: E402

from edgekit.data.synth import write_dataset  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    """Synthetic street scenes as a plain image folder and as a video, no labels."""
    root = tmp_path_factory.mktemp("footage")
    write_dataset(root / "ds", count=8, seed=3, width=320, height=240)
    images = sorted((root / "ds" / "images").rglob("*.jpg")) or sorted(
        (root / "ds" / "images").rglob("*.png"))
    video = root / "street.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
    for path in images:
        writer.write(cv2.imread(str(path)))
    writer.release()
    return {"folder": root / "ds" / "images", "video": video, "labelled": root / "ds"}


def test_sources_without_labels_are_recognised(footage) -> None:
    assert is_unlabelled(footage["video"]) and is_unlabelled(footage["folder"])
    assert is_unlabelled("rtsp://camera/stream")
    assert not is_unlabelled(footage["labelled"])  # a labelled set still wins
    frames = read_frames(str(footage["video"]), 4)
    assert len(frames) == 4 and frames[0][1].shape == (240, 320, 3)
    assert [name.rsplit("frame", 1)[1] for name, _ in frames] == ["0", "2", "5", "7"]


def test_export_gates_fp16_against_fp32_on_a_video(footage, tiny_onnx: Path,
                                                   tmp_path: Path) -> None:
    lines: list[str] = []
    bundle = export(tiny_onnx, tmp_path / "b", formats=("onnx",), precisions=("fp32", "fp16"),
                    labels=["a", "b", "c"], val=str(footage["video"]), progress=lines.append)
    assert any("label-free" in line for line in lines)
    fp32 = bundle.select(precision="fp32").accuracy
    fp16 = bundle.select(precision="fp16").accuracy
    assert fp32["gate"] == "reference" and fp32["map50_95"] > 0.95  # scored against itself
    assert fp16["gate"] == "passed" and fp16["label_free"] is True
    assert "Label-free" in fp16["note"] and "not accuracy" in fp16["note"]
    assert fp16["agreement"] == 1.0 and fp16["box_iou_mean"] > 0.99
    assert fp16["score_diff_mean"] < 0.01
    # per class, against the pseudo-labels: fp32 saw classes b and c, one box each per frame
    assert {k: v["instances"] for k, v in fp16["per_class"].items()} == {"a": 0, "b": 8, "c": 8}
    assert fp16["images"] == 8


def test_footage_where_fp32_sees_nothing_is_refused(footage, tmp_path: Path) -> None:
    from helpers import make_yolo_onnx

    from edgekit.errors import DatasetError

    blind = make_yolo_onnx(tmp_path / "blind.onnx", boxes=[(10, 10, 4, 4, 0, 0.1)])
    with pytest.raises(DatasetError, match="nothing to compare"):
        export(blind, tmp_path / "b", formats=("onnx",), precisions=("fp32", "fp16"),
               labels=["a", "b", "c"], val=str(footage["folder"]))
