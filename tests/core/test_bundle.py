"""The bundle refuses tampered, truncated and missing files, and is written atomically."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.bundle import (
    MANIFEST,
    Bundle,
    BundleWriter,
    Format,
    InputSpec,
    Layout,
    Manifest,
    Precision,
)
from edgekit.errors import BundleError, UnknownNameError


def write_bundle(tmp_path: Path, name: str = "b") -> Path:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx, but bytes with a hash" * 10)
    out = tmp_path / name
    with BundleWriter(out, Manifest(name="demo", labels=["car", "bus"])) as writer:
        writer.add_file(model, format=Format.ONNX, precision=Precision.FP32)
        writer.add_file(
            model,
            format=Format.ONNX,
            precision=Precision.INT8,
            name="model.int8.onnx",
            accuracy={"map50_95": 0.5},
        )
    return out


def test_roundtrip_keeps_every_field(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    bundle = Bundle.load(out)
    m = bundle.manifest
    assert m.labels == ["car", "bus"] and m.input == InputSpec()
    assert [a.key for a in m.artifacts] == ["onnx/fp32", "onnx/int8"]
    assert m.artifacts[1].accuracy == {"map50_95": 0.5}
    assert m.artifacts[0].size == (tmp_path / "model.onnx").stat().st_size
    assert not list(tmp_path.glob(".b.*")), "no staging directory left behind"


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    data = bytearray((out / "model.onnx").read_bytes())
    data[5] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        Bundle.load(out)


def test_truncated_artifact_is_refused(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes()[:-10])
    with pytest.raises(BundleError, match="truncated"):
        Bundle.load(out)


def test_missing_artifact_is_refused(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    (out / "model.int8.onnx").unlink()
    with pytest.raises(BundleError, match="model.int8.onnx' is missing"):
        Bundle.load(out)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"schema_version": 99, "name": "x", "labels": ["a"]}),
         r"\$\.schema_version: must be 1"),
        (json.dumps({"schema_version": 1, "labels": ["a"]}), "'name' is a required property"),
        (
            json.dumps(
                {"schema_version": 1, "name": "x", "labels": ["a"], "input": {"layout": "diagonal"}}
            ),
            r"\$\.input\.layout: got 'diagonal'",
        ),
    ],
)
def test_bad_manifest_is_refused(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(BundleError, match=message):
        Bundle.load(tmp_path)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not an edgekit bundle"):
        Bundle.load(tmp_path)


def test_artifact_path_cannot_leave_the_bundle(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    data = json.loads((out / MANIFEST).read_text())
    data["artifacts"][0]["file"] = "../model.onnx"
    (out / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"artifacts\[0\]\.file: must be a relative path inside"):
        Bundle.load(out)
    (out / "link.onnx").symlink_to(tmp_path / "model.onnx")  # schema-clean, resolves outside
    data["artifacts"][0]["file"] = "link.onnx"
    (out / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="leaves the bundle"):
        Bundle.load(out)


def test_failed_write_leaves_nothing_and_keeps_the_old_bundle(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    before = (out / MANIFEST).read_text()
    with pytest.raises(RuntimeError), BundleWriter(out, Manifest(name="new", labels=["x"])):
        raise RuntimeError("converter crashed")
    assert (out / MANIFEST).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "model.onnx"]


def test_rewrite_replaces_the_bundle(tmp_path: Path) -> None:
    out = write_bundle(tmp_path)
    with BundleWriter(out, Manifest(name="second", labels=["x"])):
        pass
    assert Bundle.load(out).manifest.name == "second"
    assert not (out / "model.onnx").exists()


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with (
        pytest.raises(BundleError, match="not an edgekit bundle"),
        BundleWriter(foreign, Manifest(name="x", labels=["x"])),
    ):
        pass
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_select_prefers_fp32_onnx_and_filters(tmp_path: Path) -> None:
    bundle = Bundle.load(write_bundle(tmp_path))
    assert bundle.select().key == "onnx/fp32"
    assert bundle.select(precision="int8").key == "onnx/int8"
    assert bundle.select(prefer=[(Format.ONNX, Precision.INT8)]).key == "onnx/int8"
    with pytest.raises(BundleError, match="has no artifact.*it has: onnx/fp32, onnx/int8"):
        bundle.select(format="tflite")
    with pytest.raises(UnknownNameError, match="Use one of: fp32, fp16, int8"):
        bundle.select(precision="int4")


def test_nhwc_spec_reports_height_and_width() -> None:
    spec = replace(InputSpec(), shape=(1, 240, 320, 3), layout=Layout.NHWC)
    assert (spec.height, spec.width) == (240, 320)


def test_bundle_directory_gets_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    out = write_bundle(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
