"""The parts of an on-board bench that need no SSH: thermal readings, the matmul peak, FLOPs,
artifact selection from a device's facts, and the cross-board table."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from edgekit.devices.flash.targets import FlashError
from edgekit.devices.remote import thermal
from edgekit.devices.remote.bench import select_artifacts
from edgekit.devices.remote.peak import measure_peak

from edgekit.bench import boards
from edgekit.bench.flops import bundle_flops, count_flops, mac_flops, utilisation


def _sysfs(root, temps_milli, cur_khz, max_khz=2_400_000):
    for i, (kind, milli) in enumerate(temps_milli):
        zone = root / "thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(f"{kind}\n")
        (zone / "temp").write_text(f"{milli}\n")
    for i, khz in enumerate(cur_khz):
        freq = root / "cpu" / f"cpu{i}" / "cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text(f"{khz}\n")
        (freq / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
    return thermal.Sources(thermal=root / "thermal", cpu=root / "cpu",
                           devfreq=root / "devfreq", commands=False)


def test_thermal_this_host_says_not_exposed():
    """This container exposes no thermal zone or cpufreq: reported as such, nothing invented."""
    with thermal.Sampler(interval_s=0.05) as sampler:
        sum(range(200_000))
    report = sampler.report()
    assert report["temperature_c"] == thermal.NOT_EXPOSED or isinstance(
        report["temperature_c"], dict)
    if not list(thermal.Sources().thermal.glob("thermal_zone*")):
        assert report["temperature_c"] == thermal.NOT_EXPOSED
        assert report["throttling"] in (thermal.NOT_EXPOSED,) or "source" in report["throttling"]


def test_thermal_zones_and_clock_capping_from_a_board_sysfs(tmp_path):
    sources = _sysfs(tmp_path, [("cpu-thermal", 61_250)], [2_400_000, 2_400_000])
    first = thermal.snapshot(sources)
    (tmp_path / "thermal" / "thermal_zone0" / "temp").write_text("83400\n")
    (tmp_path / "cpu" / "cpu1" / "cpufreq" / "scaling_cur_freq").write_text("1500000\n")
    report = thermal.summarize([first, thermal.snapshot(sources)])
    assert report["temperature_c"]["cpu-thermal"] == {"start": 61.25, "max": 83.4, "end": 83.4}
    assert report["cpu_mhz"]["rated_max"] == 2400.0
    assert report["throttling"] == {"source": "cpufreq", "lowest_mhz": 1500.0,
                                    "rated_max_mhz": 2400.0, "below_rated": True}
    assert report["power_model"] == thermal.NOT_EXPOSED


def test_vcgencmd_throttle_bits():
    decoded = thermal.parse_throttled("throttled=0x50005")
    assert decoded["raw"] == "0x50005" and decoded["now"]
    assert decoded["flags"] == ["under-voltage now", "throttled now", "under-voltage occurred",
                                "throttling occurred"]
    assert thermal.parse_throttled("throttled=0x0") == {"raw": "0x0", "flags": [], "now": False}


def test_peak_probe_at_one_thread():
    peak = measure_peak(1, seconds=0.2)
    assert peak["threads"] == 1 and peak["gflops"] > 0.1 and peak["calls"] >= 3
    assert peak["blas_threads"] in (None, 1)  # read back where threadpoolctl is installed


def _conv_gemm(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.zeros((8 * 16 * 16, 10), np.float32), "g")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "g"], ["y"])]
    graph = helper.make_graph(
        nodes, "cg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, g])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_flops_counted_from_shapes(tmp_path):
    """edgekit's own count and onnx-tool's agree on the MACs of a Conv and a Gemm."""
    path = _conv_gemm(tmp_path / "cg.onnx")
    conv = 2 * (8 * 16 * 16) * (3 * 3 * 3)
    gemm = 2 * 10 * (8 * 16 * 16)
    own = mac_flops(path)
    assert own["by_op"] == {"Conv": conv, "Gemm": gemm} and own["uncounted"] == []
    tool = count_flops(path)
    assert tool["method"].startswith("onnx-tool")
    assert tool["by_op"]["Conv"] == conv and tool["by_op"]["Gemm"] == gemm
    assert utilisation(own["flops"], 1.0, 10.0)["gflops"] == pytest.approx(
        (conv + gemm) / 1e-3 / 1e9)


def test_sample_bundle_flops():
    """The sample detector: onnx-tool's Conv MACs (bias adds included) within 1% of edgekit's
    bias-free count; sigmoids (SiLU) add to its total."""
    from edgekit.detector import open_bundle

    counted = bundle_flops(open_bundle("sample"))
    own = mac_flops(open_bundle("sample").path / "model.onnx")
    assert counted["source"] == "model.onnx" and counted["method"].startswith("onnx-tool")
    assert counted["by_op"]["Conv"] == pytest.approx(own["by_op"]["Conv"], rel=0.01)
    assert counted["flops"] > own["flops"] > 3e8  # 320x320 input: about 0.33 GFLOP of Conv


def _facts(**packages):
    return {"arch": "x86_64", "python": "3.11.2", "python_path": "/usr/bin/python3",
            "packages": {"edgekit": "0.1.0", "numpy": "2.0", **packages},
            "device_tree_model": "", "board": None, "free_bytes": 1 << 40, "root": "/r"}


def test_select_artifacts_default_matrix_and_missing_runtime(tmp_path):
    from dataclasses import replace

    from edgekit.bundle import Format, Precision
    from edgekit.detector import open_bundle

    bundle = open_bundle("sample")
    onnx = bundle.manifest.artifacts[0]
    tflite = replace(onnx, format=Format.TFLITE, precision=Precision.FP32, file="m.tflite")
    both = bundle.with_manifest(replace(bundle.manifest, artifacts=[onnx, tflite]))

    profile, _, chosen, run, skipped = select_artifacts(
        both, _facts(onnxruntime="1.32"), board=None, matrix=False)
    assert profile.name == "cpu-x86_64" and chosen.key == "onnx/fp32" and skipped == {}
    _, _, _, run, skipped = select_artifacts(both, _facts(onnxruntime="1.32"), board=None,
                                             matrix=True)
    assert [a.key for a in run] == ["onnx/fp32"]
    assert "ai-edge-litert" in skipped["tflite/fp32"]
    with pytest.raises(FlashError, match="install onnxruntime") as refused:
        select_artifacts(both, _facts(), board=None, matrix=False)
    assert refused.value.status == "refused"
    with pytest.raises(FlashError, match="aarch64"):
        select_artifacts(both, _facts(onnxruntime="1.32"), board="rpi5", matrix=True)


def _result(device, artifact, p50, map50_95, *, emulated=False, util=0.2):
    return {"artifact": artifact, "executed_on": "CPUExecutionProvider", "threads": 4,
            "latency_ms": {"p50": p50, "p99": p50 * 1.2, "mean": p50},
            "load_ms": 50.0, "first_inference_ms": 9.0,
            "accuracy": {"map50_95": map50_95, "source": "on device", "images": 20},
            "golden": {"ok": True, "max_abs_diff": 1e-4},
            "compute": {"gflops": 3.0, "utilisation": util},
            "thermal": {"temperature_c": {"cpu": {"start": 50.0, "max": 71.5, "end": 70.0}},
                        "throttling": {"during_run": True}},
            "fingerprint": {"device": device, "board": "rpi5", "emulated": emulated,
                            "would_run": "tflite/int8"}}


def test_board_table_markdown_and_plot(tmp_path):
    results = [_result("pi-a", "tflite/int8", 20.0, 0.60), _result("pi-a", "onnx/fp32", 40.0,
                                                                       0.65),
               _result("pi-b", "tflite/int8", 21.0, 0.6, emulated=True)]
    rows = boards.rows(results)
    assert [(r["device"], r["artifact"]) for r in rows] == [
        ("pi-a", "tflite/int8"), ("pi-a", "onnx/fp32"), ("pi-b (emulated)", "tflite/int8")]
    first = rows[0]
    assert (first["p50_ms"], first["fps"], first["mAP50-95"], first["util_%"],
            first["max_temp_C"], first["throttled"], first["would_run"]) == \
        (20.0, 50.0, 60.0, 20.0, 71.5, "yes", "yes")
    assert rows[1]["would_run"] == ""
    failed = copy.deepcopy(results[0])
    failed["accuracy"] = {"map50_95": 0.65, "source": "export gate",
                          "on_device_error": "pycocotools is not installed"}
    assert boards.row(failed)["mAP_from"] == (
        "export gate; --val on device failed: pycocotools is not installed")
    text = boards.markdown(rows, title="t", notes=["n"])
    assert "| pi-b (emulated) | rpi5 | tflite/int8 |" in text and "- n" in text
    assert boards.write_plot(tmp_path / "p.png", rows).stat().st_size > 10_000
    no_map = copy.deepcopy(results)
    for r in no_map:
        r["accuracy"] = None
    assert boards.write_plot(tmp_path / "bars.png", boards.rows(no_map)).stat().st_size > 5_000


def test_emulated_results_kept_apart_in_history(tmp_path):
    """A result from an emulated board never shows in the real board's history."""
    from edgekit.bench import BenchResult, History

    def result(emulated):
        return BenchResult(
            model="m", artifact="tflite/int8", format="tflite", backend="litert",
            precision="int8", executed_on="cpu", threads=4, runs=1, warmup=0, load_ms=1.0,
            first_inference_ms=1.0, latency_ms={"p50": 1.0, "mean": 1.0}, fps=1000.0,
            peak_rss_mb=1.0, inputs={}, timestamp="t",
            fingerprint={"board": "rpi5", "emulated": emulated})

    history = History(tmp_path / "h.sqlite")
    real, emulated = history.append(result(None)), history.append(result("qemu-user"))
    assert [r["id"] for r in history.query(board="rpi5")] == [real]
    assert [r["id"] for r in history.query(board="rpi5@emulated")] == [emulated]


def test_would_run_is_edgekits_measured_choice():
    """The fastest artifact measured on the board wins over the profile's order; an emulated
    board's latencies never count (its choice falls back to the order)."""
    from dataclasses import replace

    from edgekit.devices.remote.bench import DeviceBench, measured_choice

    from edgekit.bench import BenchResult
    from edgekit.bundle import Format, Precision
    from edgekit.detector import open_bundle

    bundle = open_bundle("sample")
    onnx = bundle.manifest.artifacts[0]
    tflite = replace(onnx, format=Format.TFLITE, precision=Precision.FP32, file="m.tflite",
                     sha256="f" * 64)
    both = bundle.with_manifest(replace(bundle.manifest, artifacts=[onnx, tflite]))

    def measured(artifact, p50, emulated):
        return BenchResult(
            model="m", artifact=artifact.key, format=str(artifact.format), backend="x",
            precision="fp32", executed_on="cpu", threads=2, runs=1, warmup=0, load_ms=1.0,
            first_inference_ms=1.0, latency_ms={"p50": p50, "mean": p50}, fps=1.0,
            peak_rss_mb=1.0, inputs={}, timestamp="t", sha256=artifact.sha256,
            fingerprint={"board": "cpu-x86_64", "emulated": emulated})

    for emulated, expected in ((None, "tflite/fp32"), ("qemu-user", "onnx/fp32")):
        device = DeviceBench(device="d", target="t", board="cpu-x86_64",
                             runtimes={"onnxruntime": "1", "ai-edge-litert": "2"},
                             results=[measured(onnx, 9.0, emulated),
                                      measured(tflite, 3.0, emulated)])
        assert measured_choice(device, both) == expected
