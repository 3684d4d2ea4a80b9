"""The benchmark harness: stats, inputs from the model, history, reports, and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from odd_models import (
    make_detector_bundle,
    make_multi_input_onnx,
    make_openvino_ir,
    make_two_input_tflite,
)

from edgekit.backends import TensorInfo
from edgekit.bench import BenchSettings, History, bench, bench_matrix, random_inputs, summarize
from edgekit.bench.history import compare
from edgekit.bench.memory import PeakRss
from edgekit.bench.report import write_csv, write_markdown, write_plot
from edgekit.errors import EdgekitError, ModelError

FAST = BenchSettings(runs=5, warmup=1)
KEYS = {"latency_ms", "fps", "load_ms", "first_inference_ms", "peak_rss_mb", "executed_on",
        "precision", "fingerprint"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    onnx_path = make_multi_input_onnx(root / "odd.onnx")
    return {"onnx": onnx_path, "xml": make_openvino_ir(onnx_path, root / "odd.xml"),
            "tflite": make_two_input_tflite(root / "two.tflite"),
            "bundle": make_detector_bundle(root)}


def test_summarize_percentiles() -> None:
    stats = summarize([float(v) for v in range(1, 101)])
    assert stats["min"] == 1 and stats["max"] == 100 and stats["mean"] == 50.5
    assert stats["p50"] == pytest.approx(50.5) and stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)


def test_random_inputs_follow_the_model() -> None:
    infos = [TensorInfo("image", (None, 3, None, None), np.dtype(np.float32)),
             TensorInfo("ids", (None,), np.dtype(np.int64))]
    with pytest.raises(EdgekitError, match="--shape image=Nx3xNxN"):
        random_inputs(infos, {})  # never a made-up image size
    image, ids = random_inputs(infos, {"image": (1, 3, 8, 8)})
    assert ids.shape == (1,) and ids.dtype == np.int64  # a dynamic batch dim runs at 1
    image, ids = random_inputs(infos, {"image": (2, 3, 16, 8), "ids": (5,)})
    assert image.shape == (2, 3, 16, 8) and ids.shape == (5,)
    with pytest.raises(EdgekitError, match="does not fit"):
        random_inputs(infos, {"image": (1, 4, 16, 16)})
    with pytest.raises(EdgekitError, match="does not have: nope"):
        random_inputs(infos, {"nope": (1,)})


@pytest.mark.parametrize("key,backend,executed", [
    ("onnx", "onnxruntime", "CPUExecutionProvider"), ("xml", "openvino", "CPU"),
    ("tflite", "litert", "CPU (XNNPACK)")])
def test_bench_any_model_file(models, key, backend, executed) -> None:
    settings = BenchSettings(runs=5, warmup=1, shapes={"image": (2, 3, 8, 8)} if key != "tflite"
                             else {})
    result = bench(models[key], settings=settings, threads=1)
    data = result.to_dict()
    assert KEYS <= set(data)
    assert (data["backend"], data["executed_on"], data["runs"]) == (backend, executed, 5)
    assert set(data["latency_ms"]) == {"min", "mean", "p50", "p90", "p99", "max"}
    assert data["latency_ms"]["min"] <= data["latency_ms"]["p50"] <= data["latency_ms"]["max"]
    assert data["peak_rss_mb"] > 10 and data["load_ms"] > 0
    fp = data["fingerprint"]
    assert fp["board"] == "cpu-x86_64" and fp["threads"] == 1 and fp["executed_on"] == executed
    assert backend.replace("litert", "ai-edge-litert") in fp["versions"]
    if key == "xml":
        assert data["precision"] == "fp32" and fp["runtime_precision"] == "f32"
    if key != "tflite":
        assert data["inputs"]["image"]["shape"] == [2, 3, 8, 8]
        assert data["inputs"]["ids"]["dtype"] == "int64"


def test_bench_bundle_as_detector_with_stages(models) -> None:
    result = bench(models["bundle"], settings=FAST, board="rpi5")
    assert result.artifact == "tflite/fp32" and result.executed_on == "CPU (XNNPACK)"
    assert set(result.stages_ms) == {"preprocess", "inference", "postprocess"}
    assert result.end_to_end_ms["p50"] >= result.latency_ms["p50"]
    assert result.fingerprint["board"] == "rpi5"
    assert result.fingerprint["detected_board"] == "cpu-x86_64"


def test_bench_errors(models, tmp_path) -> None:
    with pytest.raises(EdgekitError, match="--runs must be at least 1"):
        bench(models["onnx"], settings=BenchSettings(runs=0))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model")
    with pytest.raises(ModelError, match="None of the installed runtimes") as info:
        bench(garbage, settings=FAST)
    assert "onnxruntime:" in str(info.value) and "openvino:" in str(info.value)


def test_matrix_reports_and_history(models, tmp_path) -> None:
    results = bench_matrix(models["bundle"], settings=FAST, threads=1)
    assert [r.artifact for r in results] == ["onnx/fp32", "openvino/fp32", "tflite/fp32"]
    rows = list(csv.DictReader(write_csv(tmp_path / "m.csv", results).open()))
    assert [r["executed_on"] for r in rows] == ["CPUExecutionProvider", "CPU", "CPU (XNNPACK)"]
    assert "| onnx/fp32 |" in write_markdown(tmp_path / "m.md", results).read_text()
    png = write_plot(tmp_path / "m.png", results)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = History(tmp_path / "h.sqlite")
    ids = [history.append(r) for r in results]
    assert [r["id"] for r in history.query()] == ids[::-1]
    assert [r["artifact"] for r in history.query(artifact="openvino/fp32")] == ["openvino/fp32"]
    diff = {row["metric"]: row for row in compare(history.get(ids[0]), history.get(ids[1]))}
    assert diff["executed_on"]["old"] == "CPUExecutionProvider"
    assert diff["latency_ms.p50"]["change_pct"] is not None


def test_peak_rss_sees_an_allocation() -> None:
    with PeakRss() as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MB, touched
        del block
    assert mem.peak_mb - mem.start_mb > 40


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_peak_rss_is_the_blocks_own_peak_and_runs_nothing_beside_it() -> None:
    """The kernel's high-water mark, reset at entry: an earlier, larger allocation is not
    reported, and no sampling thread runs beside the timed calls."""
    import threading

    earlier = np.ones(400 * 2**20 // 8)  # 400 MB before the block
    del earlier
    threads = threading.active_count()
    with PeakRss() as mem:
        assert threading.active_count() == threads
        block = np.ones(64 * 2**20 // 8)
        del block
    assert mem.method == "VmHWM"
    assert 40 < mem.peak_mb - mem.start_mb < 200


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code, _, err = run_cli(args, capsys)
    return code, err


def test_cli_bench_file_json_and_history(models, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EDGEKIT_HISTORY", str(tmp_path / "env.sqlite"))
    out = tmp_path / "r.json"
    code, _ = _cli(["bench", str(models["onnx"]), "--runs", "3", "--warmup", "0",
                    "--shape", "image=1x3x16x16", "--json", str(out)], capsys)
    assert code == 0
    data = json.loads(out.read_text())
    assert KEYS <= set(data) and data["inputs"]["image"]["shape"] == [1, 3, 16, 16]
    assert (tmp_path / "env.sqlite").is_file()
    code, err = _cli(["bench", "history", "--json", str(tmp_path / "h.json")], capsys)
    assert code == 0 and json.loads((tmp_path / "h.json").read_text())["runs"][0]["id"] == 1
    _cli(["bench", "run", str(models["tflite"]), "--runs", "3"], capsys)
    code, out, _ = run_cli(["bench", "compare", "1", "2"], capsys)
    assert code == 0 and "CPU (XNNPACK)" in out  # a result: stdout, for pipes


def test_cli_matrix_writes_table_and_plot(models, tmp_path, capsys) -> None:
    code, err = _cli(["bench", str(models["bundle"]), "--matrix", "--board", "rpi5", "--runs",
                      "3", "--csv", str(tmp_path / "m.csv"), "--plot", str(tmp_path / "m.png"),
                      "--history", str(tmp_path / "h.sqlite")], capsys)
    assert code == 0
    assert "skipped openvino/fp32" in err  # a Pi does not run OpenVINO
    assert len(list(csv.DictReader((tmp_path / "m.csv").open()))) == 2
    assert (tmp_path / "m.png").stat().st_size > 1000


@pytest.mark.parametrize("args,message", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--board", "pi-zero"], "Valid boards"),
    (["--board", "rpi5", "--format", "openvino"], "cannot run the 'openvino' format"),
])
def test_cli_errors_exit_2(models, tmp_path, capsys, args, message) -> None:
    code, err = _cli(["bench", str(models["bundle"]), "--no-history", *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_unloadable_model_exit_2(tmp_path, capsys) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"nope")
    code, err = _cli(["bench", str(bad), "--no-history"], capsys)
    assert code == 2 and "None of the installed runtimes" in err
