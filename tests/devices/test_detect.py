"""Board detection from (fake) device-tree and release files, and `edgekit devices`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from edgekit.devices.detect import Facts, Paths, detect_board, gather_facts
from odd_models import make_detector_bundle

from edgekit.cli import main
from edgekit.errors import UnknownNameError


def _paths(tmp_path: Path, *, model: str | None = None, firmware: str | None = None,
           tegra: str | None = None) -> Paths:
    files = {"model": model, "firmware": firmware, "tegra": tegra}
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_bytes(text.encode() + b"\x00")
    return Paths(device_tree_model=tmp_path / "model", firmware_model=tmp_path / "firmware",
                 tegra_release=tmp_path / "tegra", cpuinfo=tmp_path / "cpuinfo")


@pytest.mark.parametrize("model,tegra,board", [
    ("NVIDIA Jetson Orin Nano Developer Kit", "# R36 (release), REVISION: 4.3", "jetson-orin-nano"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "# R36", "jetson-orin-nx"),
    ("Jetson AGX Orin Developer Kit", "# R35", "jetson-agx-orin"),
    ("NVIDIA Jetson Nano Developer Kit", "# R32 (release), REVISION: 7.4", "jetson-nano"),
    ("Raspberry Pi 5 Model B Rev 1.0", None, "rpi5"),
    ("Raspberry Pi 4 Model B Rev 1.4", None, "rpi4"),
])
def test_boards_from_device_tree(tmp_path, model, tegra, board) -> None:
    facts = replace(gather_facts(paths=_paths(tmp_path, model=model, tegra=tegra), probe=False),
                    arch="aarch64")
    assert facts.device_tree_model == model
    assert detect_board(facts).profile.name == board


def test_firmware_model_is_read_when_proc_has_none(tmp_path) -> None:
    facts = gather_facts(paths=_paths(tmp_path, firmware="Raspberry Pi 5 Model B Rev 1.1"),
                         probe=False)
    assert facts.device_tree_model == "Raspberry Pi 5 Model B Rev 1.1"


def test_unknown_jetson_falls_back_to_generic_arm_and_says_so(tmp_path) -> None:
    facts = replace(gather_facts(paths=_paths(tmp_path, model="Jetson Xavier NX",
                                              tegra="# R35 (release)"), probe=False),
                    arch="aarch64")
    found = detect_board(facts)
    assert found.profile.name == "cpu-aarch64"
    assert "Jetson" in found.reason and "without a profile" in found.reason


def test_npu_from_openvino_devices() -> None:
    facts = Facts(arch="x86_64", cores=16, openvino_devices=("CPU", "GPU.0", "NPU"))
    assert detect_board(facts).profile.name == "intel-core-ultra-npu"
    assert detect_board(replace(facts, openvino_devices=("CPU",))).profile.name == "cpu-x86_64"


def test_unknown_arch_lists_boards() -> None:
    with pytest.raises(UnknownNameError, match="No board profile") as info:
        detect_board(Facts(arch="riscv64", cores=4))
    assert "rpi5" in info.value.hint


def test_this_machine_is_a_generic_cpu_with_real_runtimes() -> None:
    facts = gather_facts()
    assert detect_board(facts).profile.family == "cpu"
    assert "CPUExecutionProvider" in facts.ort_providers
    assert "CPU" in facts.openvino_devices
    assert {"onnxruntime", "openvino", "ai-edge-litert"} <= set(facts.runtimes)
    assert facts.tensorrt_version is None


def test_devices_cli_json_and_bundle_choices(tmp_path, capsys) -> None:
    bundle = make_detector_bundle(tmp_path, int8_labels=True)
    out = tmp_path / "devices.json"
    main(["devices", "--bundle", str(bundle), "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["board"] == "cpu-x86_64"
    assert "CPUExecutionProvider" in data["facts"]["ort_providers"]
    picks = {name: v.get("artifact") for name, v in data["bundle"].items()}
    assert picks["rpi5"] == "tflite/int8"
    assert picks["jetson-orin-nano"] == "onnx/int8"
    assert picks["jetson-nano"] == "onnx/fp32"  # no int8 on the Maxwell GPU
    assert picks["intel-core-ultra-npu"] == "openvino/fp32"
    assert picks["cpu-x86_64"] == "onnx/int8"
