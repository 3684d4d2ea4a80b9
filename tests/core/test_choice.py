"""The default artifact is the fastest measured one that passed its gate, not the profile's
first guess; the profile's order only breaks ties."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli

from edgekit.bench.history import History
from edgekit.bench.result import BenchResult
from edgekit.bundle import Artifact, BundleWriter, Format, InputSpec, Manifest, Precision
from edgekit.choice import choose


def _artifact(key: str, *, gate: str | None = "passed", ms: float | None = None,
              sha: str = "") -> Artifact:
    fmt, precision = key.split("/")
    details = {} if ms is None else {"latency_ms_median": ms, "latency_threads": 2}
    return Artifact(format=Format(fmt), precision=Precision(precision), file=f"{key}.bin",
                    sha256=sha or key, size=1, details=details,
                    accuracy=None if gate is None else {"gate": gate, "map50_95": 0.65})


def test_fastest_measured_artifact_that_passed_wins_over_the_profile_order() -> None:
    # The demo's case: openvino/int8 first in the x86 profile, but slower than openvino/fp32.
    options = [(_artifact("openvino/int8", ms=8.2), "openvino"),
               (_artifact("onnx/int8", gate="failed", ms=1.0), "onnxruntime"),
               (_artifact("openvino/fp32", ms=4.7), "openvino"),
               (_artifact("onnx/fp32", ms=3.0, gate="reference"), None)]  # runtime missing
    choice = choose(options, board="cpu-x86_64")
    assert choice.chosen.artifact.key == "openvino/fp32"
    assert "fastest measured" in choice.explain and "4.70 ms" in choice.explain
    assert "onnx/int8 (failed its accuracy gate)" in choice.explain
    verdicts = {row[0]: row[-1] for row in choice.rows()}
    assert verdicts == {"openvino/int8": "", "onnx/int8": "failed its accuracy gate",
                        "openvino/fp32": "chosen", "onnx/fp32": "no runtime installed here"}


def test_profile_order_decides_when_nothing_was_measured_and_breaks_ties() -> None:
    unmeasured = [(_artifact("onnx/int8", gate=None), "onnxruntime"),
                  (_artifact("onnx/fp32", gate=None), "onnxruntime")]
    choice = choose(unmeasured, board="cpu-x86_64")
    assert choice.chosen.artifact.key == "onnx/int8" and "nothing measured" in choice.explain
    tied = [(_artifact("onnx/int8", ms=3.0), "onnxruntime"),
            (_artifact("onnx/fp32", ms=3.0), "onnxruntime")]
    assert choose(tied, board="b").chosen.artifact.key == "onnx/int8"
    assert choose([(_artifact("onnx/fp32", gate="failed"), "onnxruntime")], board="b") is None


def test_gate_latency_is_not_taken_for_another_kind_of_board() -> None:
    options = [(_artifact("tflite/int8", ms=9.0), "litert"),
               (_artifact("tflite/fp32", ms=3.0), "litert")]
    choice = choose(options, board="rpi5", gate_latency=False)
    assert choice.chosen.artifact.key == "tflite/int8"  # a host's latency is not a Pi's


def _bench_row(sha: str, board: str, p50: float) -> BenchResult:
    return BenchResult(model="m", artifact="a", format="onnx", backend="onnxruntime",
                       precision="fp32", executed_on="CPU", threads=2, runs=3, warmup=0,
                       load_ms=1, first_inference_ms=1, latency_ms={"p50": p50, "mean": p50},
                       fps=1000 / p50, peak_rss_mb=1, inputs={}, timestamp="t",
                       fingerprint={"board": board}, sha256=sha)


def test_this_boards_bench_history_outranks_the_export_gate(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    history.append(_bench_row("slow-at-export", "cpu-x86_64", 1.5))
    history.append(_bench_row("fast-at-export", "cpu-x86_64", 6.0))
    history.append(_bench_row("slow-at-export", "rpi5", 50.0))  # another board: ignored
    options = [(_artifact("onnx/int8", ms=2.0, sha="fast-at-export"), "onnxruntime"),
               (_artifact("onnx/fp32", ms=5.0, sha="slow-at-export"), "onnxruntime")]
    choice = choose(options, board="cpu-x86_64", history=history.path)
    assert choice.chosen.artifact.key == "onnx/fp32"
    assert "bench history on cpu-x86_64" in choice.explain
    missing = choose(options, board="cpu-x86_64", history=tmp_path / "none.sqlite")
    assert missing.chosen.artifact.key == "onnx/int8"
    assert not (tmp_path / "none.sqlite").exists()  # choosing never creates a history


@pytest.fixture
def two_onnx_bundle(tiny_onnx: Path, tmp_path: Path) -> Path:
    """onnx/int8 (the x86 profile's pick) measured slower than onnx/fp32 at export."""
    manifest = Manifest(name="tiny", labels=["a", "b", "c"],
                        input=InputSpec(shape=(1, 3, 32, 32)))
    with BundleWriter(tmp_path / "b", manifest) as w:
        w.add_file(tiny_onnx, format=Format.ONNX, precision=Precision.FP32, name="fp32.onnx",
                   accuracy={"gate": "reference", "map50_95": 0.654}, latency_ms_median=3.0,
                   latency_threads=2)
        w.add_file(tiny_onnx, format=Format.ONNX, precision=Precision.INT8, name="int8.onnx",
                   accuracy={"gate": "passed", "map50_95": 0.651}, latency_ms_median=5.9,
                   latency_threads=2)
    return tmp_path / "b"


def test_predict_runs_the_measured_choice_and_explains_it(two_onnx_bundle: Path,
                                                          tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    import cv2
    import numpy as np

    monkeypatch.setenv("EDGEKIT_HISTORY", str(tmp_path / "empty.sqlite"))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    code, out, err = run_cli(["predict", str(two_onnx_bundle), str(image), "-o",
                              str(tmp_path / "o"), "--explain"], capsys)
    assert code == 0, err
    assert "artifact: onnx/fp32" in err and "3.00 ms (export gate, 2 threads)" in err
    assert "predicting (onnx/fp32)" in err
    assert "onnx/int8" in out and "chosen" in out and "65.10" in out  # the --explain table
