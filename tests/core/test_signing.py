"""Ed25519 bundle signatures: sign, verify, and every way a signature must fail."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import make_yolo_onnx

from edgekit.bundle import BundleWriter, Format, Manifest, Precision
from edgekit.errors import EdgekitError
from edgekit.signing import (
    SIGNATURE_FILE,
    SignatureError,
    generate_keypair,
    key_id,
    read_public_key,
    sign_bundle,
    verify_bundle,
)


@pytest.fixture
def bundle(tmp_path):
    onnx = make_yolo_onnx(tmp_path / "m.onnx")
    with BundleWriter(tmp_path / "bundle", Manifest(name="t", labels=["a", "b", "c"])) as w:
        w.add_file(onnx, format=Format.ONNX, precision=Precision.FP32)
        (w.staging / "golden.npz").write_bytes(b"golden")
    return tmp_path / "bundle"


@pytest.fixture
def keys(tmp_path):
    private, public = generate_keypair(tmp_path / "keys" / "release")
    return private, read_public_key(public)


def test_sign_and_verify(bundle, keys):
    private, public = keys
    record = sign_bundle(bundle, private)
    assert record["key_id"] == key_id(public)
    assert sorted(record["statement"]["files"]) == ["edgekit.json", "golden.npz", "m.onnx"]
    assert verify_bundle(bundle, [public]) == {"key_id": key_id(public), "files": 3}
    assert (private.stat().st_mode & 0o777) == 0o600


def test_partial_verification_on_a_device(bundle, keys):
    private, public = keys
    sign_bundle(bundle, private)
    (bundle / "golden.npz").unlink()  # a device holds a subset of the files
    with pytest.raises(SignatureError, match="signed files missing: golden.npz"):
        verify_bundle(bundle, [public])
    assert verify_bundle(bundle, [public], partial=True)["files"] == 2


@pytest.mark.parametrize("attack, message", [
    ("edit", "'m.onnx' changed after signing"),
    ("add", "'extra.py' is not covered"),
    ("unsigned", "is not signed"),
    ("resign-statement", "signature does not match"),
    ("drop-manifest", "signed files missing: edgekit.json"),
])
def test_tampering_is_refused(bundle, keys, attack, message):
    private, public = keys
    sign_bundle(bundle, private)
    if attack == "edit":
        (bundle / "m.onnx").write_bytes((bundle / "m.onnx").read_bytes() + b"\0")
    elif attack == "add":
        (bundle / "extra.py").write_text("print('hi')")
    elif attack == "unsigned":
        (bundle / SIGNATURE_FILE).unlink()
    elif attack == "resign-statement":  # edit the statement to match a changed file
        record = json.loads((bundle / SIGNATURE_FILE).read_text())
        record["statement"]["files"]["m.onnx"] = "0" * 64
        (bundle / SIGNATURE_FILE).write_text(json.dumps(record))
    elif attack == "drop-manifest":
        (bundle / "edgekit.json").unlink()
    with pytest.raises(SignatureError, match=message):
        verify_bundle(bundle, [public], partial=True)


def test_untrusted_key_and_bad_keys(bundle, keys, tmp_path):
    private, public = keys
    other, other_pub = generate_keypair(tmp_path / "other")
    sign_bundle(bundle, other)
    with pytest.raises(SignatureError, match="does not trust"):
        verify_bundle(bundle, [public])
    assert verify_bundle(bundle, [public, read_public_key(other_pub)])["files"] == 3
    with pytest.raises(EdgekitError, match="exists; not overwriting"):
        generate_keypair(private)
    with pytest.raises(EdgekitError, match="not an ed25519 public key"):
        read_public_key("not-a-key")
    (tmp_path / "junk").write_text("junk")
    with pytest.raises(EdgekitError, match="Cannot read the signing key"):
        sign_bundle(bundle, tmp_path / "junk")
    shutil.rmtree(bundle)
    bundle.mkdir()
    with pytest.raises(EdgekitError, match="not an edgekit bundle"):
        sign_bundle(bundle, private)
