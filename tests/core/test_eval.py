"""COCO mAP through pycocotools on a tiny hand-made dataset with known answers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.data.dataset import Dataset, load_dataset
from edgekit.errors import DatasetError, MissingDependencyError
from edgekit.eval import evaluate, evaluate_detections
from edgekit.types import Detections

pytest.importorskip("pycocotools")

LABELS = ["car", "person", "bus"]  # bus has no ground truth
# file name -> boxes (x1, y1, x2, y2, class id)
BOXES = {
    "1.png": [(5, 5, 25, 25, 0), (30, 8, 60, 38, 1)],
    "2.png": [(10, 20, 40, 40, 0)],
    "3.png": [],
}


@pytest.fixture()
def dataset(tmp_path: Path) -> Dataset:
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for image_id, (name, boxes) in enumerate(BOXES.items(), start=1):
        image = np.zeros((48, 64, 3), np.uint8)
        for x1, y1, x2, y2, cls in boxes:
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 60 * cls), -1)
        cv2.imwrite(str(tmp_path / "images" / name), image)
        images.append({"id": image_id, "file_name": name, "width": 64, "height": 48})
        for x1, y1, x2, y2, cls in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(LABELS)]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    return load_dataset(tmp_path)


def oracle(dataset: Dataset, *, shift: float = 0.0):
    """A predictor that finds every ground-truth box, moved right by ``shift`` x its width."""
    truth = {dataset.read_image(s).tobytes(): s for s in dataset.items}

    def predict(image: np.ndarray) -> Detections:
        sample = truth[image.tobytes()]
        xyxy = sample.xyxy.copy()
        xyxy[:, [0, 2]] += shift * (xyxy[:, 2:3] - xyxy[:, 0:1])
        return Detections(xyxy, np.full(len(xyxy), 0.9), sample.class_id)

    return predict


def test_perfect_predictor_scores_one(dataset: Dataset) -> None:
    result = evaluate(oracle(dataset), dataset)
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(1.0)
    assert result.images == 3 and result.seconds > 0
    assert result.per_class["car"] == {"ap50": 1.0, "ap50_95": 1.0, "instances": 2}
    assert result.per_class["person"]["instances"] == 1
    # A class without ground truth has no AP and does not count in the mean (COCOeval).
    assert math.isnan(result.per_class["bus"]["ap50"])


def test_to_dict_is_json_ready(dataset: Dataset) -> None:
    out = evaluate(oracle(dataset), dataset).to_dict()
    assert set(out) == {"map50", "map50_95", "per_class", "images"}
    assert out["per_class"]["bus"] == {"ap50": None, "ap50_95": None, "instances": 0}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_empty_predictor_scores_zero(dataset: Dataset) -> None:
    result = evaluate(lambda image: Detections.empty(), dataset)
    assert result.map50 == 0.0 and result.map50_95 == 0.0
    assert result.per_class["car"]["ap50"] == 0.0


def test_shifted_boxes_pass_iou_half_but_not_the_strict_thresholds(dataset: Dataset) -> None:
    # Moved by 1/5 of its width a box overlaps its truth with IoU 0.8 / 1.2 = 2/3: it matches
    # at the thresholds 0.50, 0.55, 0.60, 0.65 and misses the other six of ten.
    result = evaluate(oracle(dataset, shift=0.2), dataset)
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(0.4)


def test_false_positives_of_a_class_without_truth_are_ignored(dataset: Dataset) -> None:
    results = {
        s.image_id: Detections(s.xyxy, np.ones(len(s.xyxy)), s.class_id) for s in dataset.items
    }
    results[3] = Detections([[1, 1, 20, 20]], [0.99], [2])  # "bus": no bus in the dataset
    result = evaluate_detections(results, dataset)
    assert result.map50 == pytest.approx(1.0)
    assert math.isnan(result.per_class["bus"]["ap50_95"])


def test_missing_images_count_as_nothing_detected(dataset: Dataset) -> None:
    first = dataset.items[0]
    result = evaluate_detections(
        {first.image_id: Detections(first.xyxy, np.ones(2), first.class_id)}, dataset
    )
    assert result.images == 3
    assert result.per_class["person"]["ap50"] == pytest.approx(1.0)
    assert result.per_class["car"]["ap50"] == pytest.approx(0.5, abs=0.01)  # 1 of 2 found


def test_unknown_image_ids_are_refused(dataset: Dataset) -> None:
    with pytest.raises(DatasetError, match=str(dataset.root)):
        evaluate_detections({99: Detections.empty()}, dataset)


def test_progress_is_reported_and_stdout_stays_clean(
    dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[int, int]] = []
    evaluate(oracle(dataset), dataset, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert capsys.readouterr().out == ""


def test_missing_pycocotools_names_the_extra(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools.cocoeval", None)  # import now fails
    with pytest.raises(MissingDependencyError, match="pycocotools") as error:
        evaluate_detections({}, dataset)
    assert "edgekit[eval]" in error.value.hint


def test_importing_eval_loads_neither_cv2_nor_pycocotools() -> None:
    code = (
        "import sys, edgekit.eval, edgekit.data.dataset\n"
        "print(','.join(m for m in ('cv2', 'pycocotools') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
