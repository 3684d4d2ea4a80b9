"""Batch planning, inputs, output store and the worker itself, without Ray (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_videos import read_all_frames, write_video

from edgekit.batch import BatchSettings, BatchSettingsError
from edgekit.batch.inputs import expand_inputs
from edgekit.batch.plan import VideoInfo, count_sampled, split, step_for, video_id
from edgekit.errors import DatasetError, UnknownNameError


def this_board() -> str:
    from edgekit.devices.detect import gather_facts
    from edgekit.devices.runners import resolve_board

    return resolve_board(None, gather_facts()).name


def test_import_edgekit_batch_loads_neither_ray_nor_pyarrow() -> None:
    code = ("import sys, edgekit, edgekit.batch, edgekit.cli\n"
            "print(','.join(m for m in ('ray', 'pyarrow', 'cv2', 'onnxruntime') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("frames", [0, 1, 7, 60, 61, 119, 1000])
@pytest.mark.parametrize("every", [1, 2, 5])
def test_segments_cover_every_sampled_frame_exactly_once(frames: int, every: int) -> None:
    info = VideoInfo(source="/v/a.mp4", video_id="a", fps=10.0, frames=frames or -1, width=4,
                     height=4)
    segments = split(info, segment_seconds=3.0, every=every)
    assert segments[-1].stop is None  # the last one reads to the end of the file
    covered: list[int] = []
    true_length = frames + 13  # the header under-reports: the open end must still cover it
    for seg in segments:
        stop = true_length if seg.stop is None else seg.stop
        covered += [i for i in range(seg.start, stop) if i % every == 0]
        assert seg.start % every == 0
    assert covered == list(range(0, true_length, every))
    assert count_sampled(0, true_length, every) == len(covered)


def test_fps_sampling_and_ids() -> None:
    assert step_for(every=None, fps=5, video_fps=25) == 5
    assert step_for(every=None, fps=100, video_fps=25) == 1
    assert step_for(every=3, fps=None, video_fps=25) == 3
    a, b = video_id("/x/cam 1.mp4"), video_id("/y/cam 1.mp4")
    assert a != b and a.startswith("cam_1-") and "=" not in a and "/" not in a


def test_settings_refuse_contradictions() -> None:
    with pytest.raises(BatchSettingsError, match="not both"):
        BatchSettings(every=2, fps=5)
    with pytest.raises(BatchSettingsError):
        BatchSettings(segment_seconds=0)
    with pytest.raises(TypeError):
        BatchSettings(2)  # keyword-only


def test_inputs_files_folders_globs_and_lists(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    v1 = tmp_path / "a" / "one.mp4"
    v2 = tmp_path / "a" / "deep" / "two.avi"
    v3 = tmp_path / "three.mkv"
    for v in (v1, v2, v3):
        v.write_bytes(b"x")
    (tmp_path / "a" / "notes.md").write_text("not a video")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# archive\n{v3.name}\nhttp://cam.example/stream.mp4\n\n")
    got = expand_inputs([tmp_path / "a", str(tmp_path / "*.mkv"), listing, v1])
    assert got == [str(v2), str(v1), str(v3), "http://cam.example/stream.mp4"]
    with pytest.raises(DatasetError, match="no such file"):
        expand_inputs([tmp_path / "missing.mp4"])
    with pytest.raises(DatasetError, match="matches no video"):
        expand_inputs([str(tmp_path / "*.mov")])
    with pytest.raises(DatasetError, match="not a video"):
        expand_inputs([tmp_path / "a" / "notes.md"])


def test_store_refuses_to_mix_runs_and_unknown_sinks(tmp_path: Path) -> None:
    from edgekit.batch.store import OutputConflictError, OutputStore

    store = OutputStore(tmp_path / "out", sink="parquet")
    assert store.begin({"every": 1}) is False
    assert store.begin({"every": 1}) is True
    with pytest.raises(OutputConflictError, match="every"):
        store.begin({"every": 2})
    with pytest.raises(UnknownNameError, match="jsonl, parquet"):
        OutputStore(tmp_path / "o2", sink="csv")


def test_worker_segments_equal_sequential_decoding_and_detection(tmp_path: Path) -> None:
    """The worker's seek + decode gives the very frames a sequential read gives (mp4v with
    keyframes every 12 frames, segments of 8), and the same detections as the Detector."""
    from edgekit.devices.runners import load_runner, open_model

    from edgekit.batch.bundle_ship import pack
    from edgekit.batch.store import OutputStore
    from edgekit.batch.worker import BatchWorker, WorkerSettings

    video = write_video(tmp_path / "v.mp4", frames=31, seed=4)
    worker = BatchWorker(pack(open_model("sample")), WorkerSettings(board=this_board()))
    info = worker.probe(str(video))
    assert (info.frames, info.fps, info.width, info.error) == (31, 10.0, 160, None)
    segments = split(info, segment_seconds=0.8, every=2)
    assert len(segments) == 4
    store = OutputStore(tmp_path / "out", sink="jsonl")
    rows = []
    for seg in segments:
        output = worker.process(seg)
        assert output.error is None
        store.commit(output)
        rows += output.table.to_pylist()
    reference = load_runner("sample", board=this_board())
    frames = read_all_frames(video)
    assert [r["frame"] for r in rows] == list(range(0, 31, 2))
    detected = 0
    for row in rows:
        expected = reference(frames[row["frame"]])
        np.testing.assert_array_equal(np.asarray(row["boxes"], np.float32).reshape(-1, 4),
                                      expected.xyxy)
        assert row["class_id"] == expected.class_id.tolist()
        detected += len(expected)
    assert detected > 0  # the generated vehicles are really detected
    record = json.loads(store.record_path(segments[0]).read_text())
    assert record["frames"] == 4 and record["worker"]["artifact"] == reference.artifact.key


def test_probe_reports_a_corrupt_video(tmp_path: Path) -> None:
    from edgekit.devices.runners import open_model

    from edgekit.batch.bundle_ship import pack
    from edgekit.batch.worker import BatchWorker, WorkerSettings

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    worker = BatchWorker(pack(open_model("sample")), WorkerSettings(board=this_board()))
    info = worker.probe(str(bad))
    assert info.error and "cannot open" in info.error
    assert split(info, segment_seconds=1, every=1) == []


def test_worker_hands_low_score_boxes_to_the_tracker_alone(tmp_path: Path) -> None:
    """tracker.detection_conf in a batch run: as in the live pipeline, boxes are decoded down
    to it for the tracker, and one under the model's threshold is kept only on a track."""
    pytest.importorskip("trackers")
    from edgekit.devices.runners import open_model

    from edgekit.analytics import parse_config
    from edgekit.batch.bundle_ship import pack
    from edgekit.batch.worker import BatchWorker, WorkerSettings

    video = write_video(tmp_path / "road.mp4", frames=90, fps=15, width=640, height=480, seed=3)
    bundle = pack(open_model("sample"))
    rows = {}
    for low in (None, 0.05):
        tracker = {"type": "botsort"} | ({"detection_conf": low} if low else {})
        worker = BatchWorker(bundle, WorkerSettings(
            board=this_board(), analytics=parse_config({"tracker": tracker})))
        threshold = worker.detector.manifest.output.conf_threshold
        (segment,) = split(worker.probe(str(video)), segment_seconds=60, every=1)
        output = worker.process(segment)
        assert output.error is None and output.frames == 90
        rows[low] = [(score, track) for row in output.table.to_pylist()
                     for score, track in zip(row["score"], row["track_id"], strict=True)]
    assert all(score >= threshold for score, _ in rows[None])
    under = [track for score, track in rows[0.05] if score < threshold]
    assert under and all(track >= 0 for track in under)
    assert all(score >= threshold for score, track in rows[0.05] if track < 0)
