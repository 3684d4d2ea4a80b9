"""What a new user meets in the first hour: inputs never overwritten, one bad image does not end
a folder, error text keeps its brackets, results on stdout and logs on stderr, readable tables
in a log, live URIs pointed to `edgekit run`, `bench --help` with the real options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cli

from edgekit.outputs import RECORD


def _images(folder: Path, names: tuple[str, ...] = ("a.png", "b.png", "c.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.full((32, 32, 3), 90, np.uint8))
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "contains", "symlink"])
def test_predict_refuses_an_output_that_overlaps_the_input(
        where: str, tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    photos = _images(tmp_path / "photos")
    before = _snapshot(photos)
    out = {"same": photos, "inside": photos / "annotated", "contains": tmp_path,
           "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        os.symlink(photos, out)
    code, _, err = run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(out)], capsys)
    assert code == 2 and "the input" in err and "Traceback" not in err
    assert _snapshot(photos) == before  # the originals are untouched
    assert not (photos / "annotated").exists()


def test_predict_never_overwrites_a_file_it_did_not_write(tiny_onnx: Path, tmp_path: Path,
                                                        capsys) -> None:
    photos = _images(tmp_path / "photos")
    out = tmp_path / "out"
    assert run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(out)], capsys)[0] == 0
    # edgekit's own files may be rewritten by a second run...
    assert run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(out)], capsys)[0] == 0
    # ...a file the user put (or changed) there may not.
    mine = out / "b.jpg"
    mine.write_bytes(b"the user's own picture")
    code, _, err = run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(out)], capsys)
    assert code == 2 and "b.jpg" in err and "did not write" in err
    assert mine.read_bytes() == b"the user's own picture"


def test_predict_keeps_inputs_that_share_a_name_apart(tiny_onnx: Path, tmp_path: Path,
                                                      capsys) -> None:
    photos = _images(tmp_path / "photos", ("a.png", "a.jpg"))
    assert run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(tmp_path / "o")],
                   capsys)[0] == 0
    assert {p.name for p in (tmp_path / "o").glob("*.jpg")} == {"a_jpg.jpg", "a_png.jpg"}


def test_one_bad_image_does_not_end_the_folder(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    photos = _images(tmp_path / "photos", ("a.png", "c.png"))
    (photos / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["predict", str(tiny_onnx), str(photos), "-o", str(out)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "b.jpg" in err and "1 of 3 images could not be read" in err
    assert "2 image(s)" in stdout and "1 skipped" in stdout  # the summary
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a.jpg", "c.jpg"]
    names = [json.loads(x)["name"] for x in (out / "detections.jsonl").read_text().splitlines()]
    assert names == ["a", "c"]


@pytest.mark.parametrize("uri", ["rtsp://127.0.0.1:8554/cam", "http://cam.local/x.mjpg",
                                 "testsrc://?fps=5"])
def test_predict_points_live_uris_to_run(uri: str, tiny_onnx: Path, tmp_path: Path,
                                         capsys) -> None:
    code, _, err = run_cli(["predict", str(tiny_onnx), uri, "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "edgekit run" in err and uri in err  # the URI is not mangled
    assert not (tmp_path / "o").exists()


def test_bench_help_shows_the_real_options(capsys) -> None:
    code, out, _ = run_cli(["bench", "--help"], capsys)
    assert code == 0
    for option in ("--matrix", "--runs", "--board", "--plot", "--val"):
        assert option in out
    assert "history" in out and "compare" in out


def test_error_text_keeps_square_brackets(tmp_path: Path, tiny_onnx: Path, capsys) -> None:
    from edgekit.cli._ui import error
    from edgekit.errors import MissingDependencyError

    exc = MissingDependencyError("openvino", extra="openvino", purpose="[x] things")
    error(exc.message, exc.hint)
    err = capsys.readouterr().err
    assert "pip install 'edgekit[openvino]'" in err and "[x] things" in err
    # End to end: a COCO file with a malformed box, through the CLI's one error printer.
    data = tmp_path / "coco"
    _images(data / "images", ("a.png",))
    (data / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": "oops"}],
        "categories": [{"id": 1, "name": "a"}]}))
    code, _, err = run_cli(["eval", str(tiny_onnx), "--data", str(data)], capsys)
    assert code == 2 and "expected [x, y, width, height]" in err


def test_results_on_stdout_and_readable_in_a_log(tiny_onnx: Path, tmp_path: Path,
                                                 capsys) -> None:
    from edgekit.bundle import BundleWriter, Format, Manifest, Precision

    with BundleWriter(tmp_path / "b", Manifest(name="tiny[1]", labels=["a", "b", "c"])) as w:
        w.add_file(tiny_onnx, format=Format.ONNX, precision=Precision.FP32,
                   accuracy={"map50_95": 0.6539232823755395, "gate": "reference"})
    code, out, err = run_cli(["info", str(tmp_path / "b")], capsys)
    assert code == 0 and "head:" in err and "head:" not in out  # notes: stderr
    # Not a terminal: no header is cut to "form…", and mAP is in points, not a long fraction.
    assert "…" not in out and "format" in out and "precision" in out
    assert "65.39" in out and "0.6539232823755395" not in out
    assert "tiny[1]" in out  # a bracketed name is text, not markup


def test_narrow_terminal_folds_cells_instead_of_cutting_them() -> None:
    from rich.console import Console

    from edgekit.cli._ui import table

    console = Console(width=40, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table("t", ["format", "precision", "mAP@0.5:0.95 (pts)", "latency ms"],
                        [("openvino", "fp32", "65.39", "2.71")]))
    text = console.export_text()
    assert "…" not in text and "openvi" in text and "65.39" in text


def test_predict_writes_no_record_outside_its_folder(tiny_onnx: Path, tmp_path: Path,
                                                     capsys) -> None:
    photos = _images(tmp_path / "photos", ("a.png",))
    assert run_cli(["predict", str(tiny_onnx), str(photos / "a.png"), "-o",
                    str(tmp_path / "o")], capsys)[0] == 0
    assert json.loads((tmp_path / "o" / RECORD).read_text()).keys() == {"a.jpg",
                                                                        "detections.jsonl"}


def test_quiet_by_default_everything_under_verbose(tmp_path: Path) -> None:
    """LiteRT's XNNPACK note (printed by C++ straight to stderr) shows only with --verbose."""
    import subprocess
    import sys

    from odd_models import make_nhwc_detector_tflite

    model = make_nhwc_detector_tflite(tmp_path / "m.tflite", boxes=[(10, 12, 8, 6, 1, 0.9)])
    image = _images(tmp_path / "in", ("a.png",)) / "a.png"

    def predict(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edgekit", *flags, "predict", str(model),
                               str(image), "-o", str(tmp_path / f"o{len(flags)}")],
                              capture_output=True, text=True, timeout=120)

    quiet, verbose = predict(), predict("--verbose")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    assert "XNNPACK" not in quiet.stderr + quiet.stdout
    assert "XNNPACK" in verbose.stderr
