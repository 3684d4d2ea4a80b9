"""JSONL and video sinks rotate by size or age and keep the newest N finished files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_helpers import write_video

from edgekit.errors import EdgekitError
from edgekit.pipeline import Pipeline
from edgekit.sinks.rotation import RotatingPath, Rotation


@pytest.mark.parametrize("query, expected", [
    ("rotate=1h", Rotation(max_age_s=3600, keep=10)),
    ("rotate=30m&keep=3", Rotation(max_age_s=1800, keep=3)),
    ("rotate=100MB", Rotation(max_bytes=100_000_000)),
    ("rotate=1.5GiB&keep=2", Rotation(max_bytes=int(1.5 * 2**30), keep=2)),
])
def test_rotation_is_read_from_the_uri(query: str, expected: Rotation) -> None:
    from urllib.parse import parse_qs

    assert Rotation.from_query("x.jsonl", parse_qs(query)) == expected


@pytest.mark.parametrize("query, words", [
    ({"rotate": ["soon"]}, "neither a size nor an age"),
    ({"rotate": ["0h"]}, "neither a size nor an age"),
    ({"rotate": ["1h"], "keep": ["0"]}, "keep='0'"),
    ({"keep": ["3"]}, "keep= needs rotate="),
])
def test_bad_rotation_is_refused(query: dict, words: str) -> None:
    with pytest.raises(EdgekitError, match=words):
        Rotation.from_query("x.jsonl", query)


def test_jsonl_rotates_by_size_and_keeps_n_files(detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "c.mp4", 30)
    out = tmp_path / "ev.jsonl"
    summary = Pipeline(detector, [str(video)], [f"{out}?rotate=1kB&keep=2"]).run()
    assert summary["frames_out"] == 30
    finished = sorted(tmp_path.glob("ev.*.jsonl"))
    assert len(finished) == 2  # older ones were deleted
    lines = [json.loads(line) for f in [*finished, out] for line in f.read_text().splitlines()]
    assert all(f.stat().st_size >= 1000 for f in finished)
    indexes = [line["index"] for line in lines]
    assert indexes == sorted(indexes) and indexes[-1] == 29  # the newest lines, in order


def test_rotation_by_age_renames_with_the_start_time(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    rotating = RotatingPath(path, Rotation(max_age_s=0.2, keep=5))
    path.write_text("{}\n")
    assert not rotating.due(size=3)
    time.sleep(0.25)
    assert rotating.due(size=3)
    done = rotating.roll()
    assert not path.exists() and done.read_text() == "{}\n"
    assert done.name.startswith("ev.") and done.suffix == ".jsonl" and done.stem.endswith("-000")



def test_several_rolls_in_one_second_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    rotating = RotatingPath(path, Rotation(max_bytes=1, keep=2))
    started = rotating.started
    for i in range(3):
        path.write_text(f"{i}\n")
        rotating.started = started  # the same second each time
        rotating.roll()
    kept = rotating.finished()
    assert [p.read_text() for p in kept] == ["1\n", "2\n"]  # the oldest was deleted
    assert [p.stem[-3:] for p in kept] == ["001", "002"]


def test_video_rotates_by_size(detector, tmp_path: Path) -> None:
    # Noise compresses badly: each frame is tens of kB, past the muxer's 32 kB write buffer,
    # so the file on disk grows while it is written.
    video = tmp_path / "noise.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(40):
        writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out.mp4"
    Pipeline(detector, [str(video)], [f"{out}?rotate=300kB&keep=50"]).run()
    parts = [*sorted(tmp_path.glob("out.*.mp4")), *([out] if out.exists() else [])]
    assert len(parts) >= 2
    frames = 0
    for part in parts:  # every finished part is a complete, playable file
        capture = cv2.VideoCapture(str(part))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        assert count > 0 and capture.read()[0]
        capture.release()
        frames += count
    assert frames == 40
