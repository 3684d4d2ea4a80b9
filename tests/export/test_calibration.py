"""Calibration sources: image folders, videos, datasets; and every way they can be bad."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgekit.export.calibration import evenly, load_calibration  # noqa: E402

from edgekit.bundle import InputSpec  # noqa: E402
from edgekit.data.synth import write_dataset  # noqa: E402
from edgekit.errors import DatasetError  # noqa: E402
from edgekit.preprocess import preprocess  # noqa: E402

SPEC = InputSpec(shape=(1, 3, 64, 64))


def _images(folder: Path, count: int, *, size: tuple[int, int] = (48, 80)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_folder_is_preprocessed_with_the_manifest_spec(tmp_path: Path) -> None:
    paths = _images(tmp_path / "imgs", 5)
    with pytest.warns(UserWarning, match="Calibrating on 5 images"):
        calib = load_calibration(tmp_path / "imgs", SPEC, min_samples=10)
    assert len(calib) == 5
    # Exactly what edgekit.preprocess makes of the file: letterboxed, RGB, /255, NCHW.
    expected = preprocess(cv2.imread(str(paths[2])), SPEC)[0]
    np.testing.assert_array_equal(calib.tensors[2], expected)
    assert calib.tensors[0].shape == (1, 3, 64, 64) and calib.tensors[0].dtype == np.float32
    again = load_calibration(tmp_path / "imgs", SPEC, min_samples=1)
    assert again.sha256 == calib.sha256


def test_count_spreads_evenly_and_enough_images_do_not_warn(tmp_path: Path) -> None:
    _images(tmp_path / "imgs", 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calib = load_calibration(tmp_path / "imgs", SPEC, count=3, min_samples=3)
    assert len(calib) == 3
    assert evenly(list(range(9)), 3) == [0, 4, 8]
    assert evenly([1, 2], 5) == [1, 2]


def test_video_frames_are_sampled_evenly(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        frame = np.full((48, 64, 3), i * 10, np.uint8)  # frame i is uniformly 10 * i
        writer.write(frame)
    writer.release()
    calib = load_calibration(video, SPEC, count=4, min_samples=1)
    assert len(calib) == 4
    # Frames 0, 6, 13, 19: brightness grows along the clip (MJPEG is lossy: compare roughly).
    centres = [float(t[0, :, 32, 32].mean()) * 255 for t in calib.tensors]
    assert centres == sorted(centres)
    assert abs(centres[0] - 0) < 8 and abs(centres[-1] - 190) < 8
    assert calib.source == str(video)


def test_dataset_folder_is_read_as_a_dataset(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", count=4, seed=3, width=96, height=64)
    calib = load_calibration(tmp_path / "data", SPEC, min_samples=1)
    assert len(calib) == 4


@pytest.mark.parametrize("case", ["empty", "missing", "unreadable", "grey", "rgba"])
def test_bad_sources_name_the_file(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    if case != "empty":
        _images(folder, 2)
    bad = {"unreadable": folder / "broken.jpg", "grey": folder / "grey.png",
           "rgba": folder / "alpha.png"}.get(case)
    if case == "unreadable":
        bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    elif case == "grey":
        cv2.imwrite(str(bad), np.zeros((16, 16), np.uint8))
    elif case == "rgba":
        cv2.imwrite(str(bad), np.zeros((16, 16, 4), np.uint8))
    source = tmp_path / "nowhere" if case == "missing" else folder
    with pytest.raises(DatasetError) as info:
        load_calibration(source, SPEC, min_samples=1)
    expected = {"empty": "holds no images", "missing": "not found",
                "unreadable": "Cannot read", "grey": "1 channel", "rgba": "4 channel"}[case]
    assert expected in info.value.message
    assert str(bad or source) in info.value.message
