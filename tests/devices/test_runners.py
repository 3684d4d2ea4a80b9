"""Runner choices per board family, tested here without the hardware; real runs on CPU."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from edgekit.devices.detect import Facts, gather_facts
from edgekit.devices.profiles import load_profile
from edgekit.devices.runners import Request, load_runner, make_plan
from edgekit.devices.runners.jetson import engine_cache_key, provider_chain
from odd_models import make_detector_bundle

from edgekit.bundle import Bundle, Precision
from edgekit.detector import with_layouts
from edgekit.errors import BundleError, EdgekitError, MissingDependencyError, UnknownNameError

IMAGE = np.full((48, 64, 3), 90, np.uint8)
ON_JETSON = Path("/etc/nv_tegra_release").exists()
ON_PI = "Raspberry Pi" in (
    Path("/proc/device-tree/model").read_text(errors="replace")
    if Path("/proc/device-tree/model").exists()
    else ""
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_detector_bundle(tmp_path_factory.mktemp("b"))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Bundle:
    return Bundle.load(make_detector_bundle(tmp_path_factory.mktemp("l"), int8_labels=True))


@pytest.fixture(scope="module")
def here() -> Facts:
    return gather_facts()


def _jetson_facts(**changes) -> Facts:
    base = Facts(
        arch="aarch64",
        cores=6,
        runtimes={"onnxruntime-gpu": "1.20"},
        ort_providers=(
            "TensorrtExecutionProvider",
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ),
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA Jetson Orin Nano Developer Kit",
    )
    return replace(base, **changes)


def test_jetson_chain_with_tensorrt(tmp_path) -> None:
    facts = _jetson_facts()
    providers, options, cache = provider_chain(
        facts, precision=Precision.INT8, shapes={"images": [1, 3, 32, 32]}, cache_root=tmp_path
    )
    assert providers == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = options[0]
    assert trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(cache) and cache.parent == tmp_path
    assert (trt["trt_int8_enable"], trt["trt_fp16_enable"]) == ("True", "True")
    _, fp32, _ = provider_chain(
        facts, precision=Precision.FP32, shapes={"images": [1, 3, 32, 32]}, cache_root=tmp_path
    )
    assert (fp32[0]["trt_int8_enable"], fp32[0]["trt_fp16_enable"]) == ("False", "False")


def test_engine_cache_key_changes_with_each_fact() -> None:
    base = {
        "tensorrt_version": "10.3.0",
        "gpu": "Orin Nano",
        "precision": Precision.FP16,
        "shapes": {"images": [1, 3, 640, 640]},
    }
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base) and len(key) == 16
    for change in (
        {"tensorrt_version": "8.6.2"},
        {"gpu": "AGX Orin"},
        {"precision": Precision.INT8},
        {"shapes": {"images": [1, 3, 320, 320]}},
    ):
        assert engine_cache_key(**{**base, **change}) != key


def test_jetson_without_gpu_providers_uses_cpu_only() -> None:
    providers, options, cache = provider_chain(
        _jetson_facts(ort_providers=("CPUExecutionProvider",)), precision=Precision.FP16, shapes={}
    )
    assert (providers, options, cache) == (["CPUExecutionProvider"], [{}], None)


def test_jetson_runner_here_reports_cpu_never_tensorrt(bundle, here) -> None:
    runner = load_runner(bundle, board="jetson-orin-nano", facts=here)
    assert runner.artifact.key == "onnx/fp32"
    assert runner.plan.options.extra["providers"] == ["CPUExecutionProvider"]
    assert runner.executed_on == "CPUExecutionProvider"
    assert len(runner(IMAGE)) == 2


def test_jetson_plan_on_a_jetson_asks_for_tensorrt(labelled, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # read at import: patch the root too
    import edgekit.devices.runners.jetson as jetson

    monkeypatch.setattr(jetson, "CACHE_ROOT", tmp_path / "edgekit")
    plan = make_plan(labelled, load_profile("jetson-orin-nano"), Request(), _jetson_facts())
    assert plan.artifact.key == "onnx/int8"
    assert plan.requested == "TensorrtExecutionProvider"
    assert plan.options.extra["provider_options"][0]["trt_int8_enable"] == "True"
    assert Path(plan.options.extra["provider_options"][0]["trt_engine_cache_path"]).is_dir()


def test_rpi_prefers_int8_tflite_with_threads_per_core(labelled) -> None:
    facts = Facts(arch="aarch64", cores=4, runtimes={"ai-edge-litert": "2.3", "onnxruntime": "1"})
    plan = make_plan(labelled, load_profile("rpi5"), Request(), facts)
    assert (plan.artifact.key, plan.backend, plan.options.threads) == ("tflite/int8", "litert", 4)
    # the Detector tells LiteRT that it feeds NCHW and the file takes NHWC
    options = with_layouts(plan.options, labelled.manifest, plan.artifact)
    assert options.extra == {"layout": "nchw", "model_layout": "nhwc"}
    no_litert = replace(facts, runtimes={"onnxruntime": "1"})
    plan = make_plan(labelled, load_profile("rpi5"), Request(), no_litert)
    assert (plan.artifact.key, plan.backend) == ("onnx/int8", "onnxruntime")


def test_rpi_runner_runs_the_nhwc_tflite_here(bundle, here) -> None:
    runner = load_runner(bundle, board="rpi5", facts=here)
    assert runner.artifact.key == "tflite/fp32"
    assert runner.plan.options.threads == min(4, os.cpu_count())
    assert runner.executed_on == "CPU (XNNPACK)"
    detections = runner(IMAGE)
    reference = load_runner(bundle, board="rpi5", format="onnx", facts=here)(IMAGE)
    np.testing.assert_allclose(detections.xyxy, reference.xyxy, atol=1e-4)


def test_npu_missing_is_an_error_unless_fallback_allowed(bundle, here, caplog) -> None:
    with pytest.raises(EdgekitError, match="OpenVINO sees none"):
        load_runner(bundle, board="intel-core-ultra-npu", facts=here)
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        runner = load_runner(bundle, board="intel-core-ultra-npu", fallback=True, facts=here)
    assert runner.plan.requested == "NPU"
    assert runner.executed_on == "CPU"
    assert "falling back" in caplog.text
    assert runner.plan.options.extra["shapes"] == {"images": [1, 3, 32, 32]}


def test_npu_plan_with_an_npu(labelled) -> None:
    facts = Facts(
        arch="x86_64",
        cores=16,
        runtimes={"openvino": "2026"},
        openvino_devices=("CPU", "GPU", "NPU"),
    )
    plan = make_plan(labelled, load_profile("intel-core-ultra-npu"), Request(), facts)
    assert (plan.artifact.key, plan.backend, plan.options.device) == (
        "openvino/fp32",
        "openvino",
        "npu",
    )
    assert "fallback" not in plan.options.extra and plan.options.extra["cache_dir"]


def test_cpu_picks_by_profile_order_among_installed_runtimes(labelled, here) -> None:
    board = load_profile("cpu-x86_64")
    assert make_plan(labelled, board, Request(), here).artifact.key == "onnx/int8"
    fp32 = make_plan(labelled, board, Request(precision=Precision.FP32), here)
    assert (fp32.artifact.key, fp32.options.extra) == ("openvino/fp32", {"precision": "fp32"})
    no_ov = replace(here, runtimes={"ai-edge-litert": "2.3"})
    assert (
        make_plan(labelled, board, Request(precision=Precision.FP32), no_ov).artifact.key
        == "tflite/fp32"
    )
    with pytest.raises(MissingDependencyError):
        make_plan(labelled, board, Request(), replace(here, runtimes={}))


def test_board_errors(bundle, here) -> None:
    with pytest.raises(UnknownNameError, match="cannot run the 'openvino' format"):
        load_runner(bundle, board="rpi5", format="openvino", facts=here)
    with pytest.raises(UnknownNameError, match="Valid boards"):
        load_runner(bundle, board="pi-zero", facts=here)
    with pytest.raises(BundleError, match="has nothing the board"):
        load_runner(bundle, board="rpi5", precision="int8", facts=here)


def test_runner_on_a_bare_tflite_file(bundle, here) -> None:
    runner = load_runner(Path(bundle) / "model.tflite", board="rpi5", facts=here)
    assert runner.detector.manifest.input.shape == (1, 32, 32, 3)
    assert len(runner(IMAGE)) == 2


@pytest.mark.jetson
@pytest.mark.skipif(not ON_JETSON, reason="needs an NVIDIA Jetson")
def test_on_jetson_tensorrt_really_runs(bundle) -> None:
    runner = load_runner(bundle)
    assert runner.executed_on == "TensorrtExecutionProvider"


@pytest.mark.rpi
@pytest.mark.skipif(not ON_PI, reason="needs a Raspberry Pi")
def test_on_pi_litert_runs_with_all_cores(bundle) -> None:
    runner = load_runner(bundle)
    assert runner.board.family == "rpi" and runner.plan.options.threads == os.cpu_count()


@pytest.mark.npu
@pytest.mark.skipif(platform.machine() != "x86_64", reason="needs an Intel NPU")
def test_on_npu_it_really_runs_there(bundle) -> None:
    facts = gather_facts()
    if "NPU" not in facts.openvino_devices:
        pytest.skip("no NPU in OpenVINO's devices")
    assert "NPU" in load_runner(bundle, board="intel-core-ultra-npu").executed_on
