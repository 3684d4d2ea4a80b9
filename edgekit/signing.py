"""Ed25519 signatures over a bundle: who made it, and that nothing in it changed since.

The signed statement lists every file of the bundle with its sha256 (the manifest included,
which itself pins each artifact's hash), so one signature covers the whole directory. It lives
in the bundle as ``edgekit.sig``. A device that received only some of the files (the artifact
its board runs, the manifest, the golden file) verifies those with ``partial=True``: each file
it has must be listed with the same hash, and nothing unlisted may be present.

Keys: the private key is a PKCS#8 PEM file (mode 0600); the public key file holds one line,
``ed25519 <base64 of the 32 raw bytes> [comment]``, the same base64 a device's trust list holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .bundle import MANIFEST, sha256_file
from .errors import BundleError, EdgekitError, require

SIGNATURE_FILE = "edgekit.sig"
STATEMENT_FORMAT = "edgekit-signature/1"

__all__ = ["SIGNATURE_FILE", "SignatureError", "generate_keypair", "read_public_key",
           "sign_bundle", "verify_bundle", "key_id"]


class SignatureError(BundleError):
    """A bundle is unsigned, signed by an untrusted key, or changed after signing."""


def _crypto() -> Any:
    require("cryptography", purpose="signing and verifying bundles")
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_b64: str) -> str:
    """A short, stable name for a public key (first 16 hex digits of its sha256)."""
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


def generate_keypair(private_path: str | Path, *, comment: str = "edgekit") -> tuple[Path, Path]:
    """Writes a new ed25519 key pair: ``private_path`` (0600) and ``private_path + '.pub'``.

    Raises:
        EdgekitError: the private key file exists already (never silently overwritten).
    """
    from cryptography.hazmat.primitives import serialization

    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    if private_path.exists():
        raise EdgekitError(f"{private_path} exists; not overwriting a key.",
                           hint="Choose another file name, or delete the old key on purpose.")
    key = _crypto().Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    public_path.write_text(f"ed25519 {base64.b64encode(raw).decode()} {comment}\n")
    return private_path, public_path


def read_public_key(value: str | Path) -> str:
    """Returns the base64 public key from a ``.pub`` file, or ``value`` itself if it is one."""
    text = str(value)
    path = Path(text)
    if path.is_file():
        text = path.read_text()
    parts = text.split()
    candidate = parts[1] if len(parts) > 1 and parts[0] == "ed25519" else (parts or [""])[0]
    try:
        if len(base64.b64decode(candidate, validate=True)) == 32:
            return candidate
    except ValueError:
        pass
    raise EdgekitError(f"'{value}' is not an ed25519 public key (file or base64).",
                       hint="Use the .pub file written by `edgekit keygen`.")


def _load_private(path: str | Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise EdgekitError(f"Cannot read the signing key {path}: {exc}",
                           hint="Create one with `edgekit keygen KEYFILE`.") from None
    if not isinstance(key, _crypto().Ed25519PrivateKey):
        raise EdgekitError(f"{path} is not an ed25519 private key.",
                           hint="Create one with `edgekit keygen KEYFILE`.")
    return key


def _files(bundle: Path) -> dict[str, str]:
    """Every regular file of the bundle but the signature, by POSIX relative path."""
    return {p.relative_to(bundle).as_posix(): sha256_file(p)
            for p in sorted(bundle.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != SIGNATURE_FILE}


def _canonical(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def sign_bundle(bundle: str | Path, private_key: str | Path) -> dict[str, Any]:
    """Signs every file of ``bundle`` and writes ``edgekit.sig`` into it.

    Returns:
        The signature record written (statement, public key, key id, signature).
    """
    from cryptography.hazmat.primitives import serialization

    root = Path(bundle)
    if not (root / MANIFEST).is_file():
        raise BundleError(f"{root} is not an edgekit bundle (no {MANIFEST}).",
                          hint="Sign the directory `edgekit export` wrote.")
    key = _load_private(private_key)
    statement = {"format": STATEMENT_FORMAT, "files": _files(root)}
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    record = {"statement": statement, "public_key": public, "key_id": key_id(public),
              "signature": base64.b64encode(key.sign(_canonical(statement))).decode()}
    tmp = root / f".{SIGNATURE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, root / SIGNATURE_FILE)
    return record


def verify_bundle(bundle: str | Path, trusted_keys: list[str], *,
                  partial: bool = False) -> dict[str, Any]:
    """Checks ``edgekit.sig`` against trusted public keys and the files on disk.

    Args:
        bundle: The bundle directory.
        trusted_keys: Base64 ed25519 public keys whose signatures are accepted.
        partial: Files listed in the statement may be absent (a device holds a subset), but
            every present file must be listed with the same sha256, the manifest included.

    Returns:
        ``{"key_id": ..., "files": n}`` for the record.

    Raises:
        SignatureError: unsigned, untrusted key, bad signature, or a file changed/added/missing.
    """
    from cryptography.exceptions import InvalidSignature

    root = Path(bundle)
    sig_path = root / SIGNATURE_FILE
    hint = "Sign the bundle with a key the device trusts: `edgekit sign BUNDLE --key KEY`."
    if not sig_path.is_file():
        raise SignatureError(f"{root} is not signed (no {SIGNATURE_FILE}) and the device "
                             "requires signed bundles.", hint=hint)
    try:
        record = json.loads(sig_path.read_text())
        statement, public = record["statement"], record["public_key"]
        signature = base64.b64decode(record["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{sig_path} is malformed: {exc}", hint=hint) from None
    if public not in trusted_keys:
        raise SignatureError(f"{root} is signed by key {key_id(public)}, which this device "
                             "does not trust.", hint=hint)
    try:
        _crypto().Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
            signature, _canonical(statement))
    except (InvalidSignature, ValueError):
        raise SignatureError(f"{root}: the signature does not match its statement (the "
                             "signature file was altered).", hint=hint) from None
    listed: dict[str, str] = statement.get("files", {})
    present = _files(root)
    for name, digest in present.items():
        if name not in listed:
            raise SignatureError(f"{root}: '{name}' is not covered by the signature.", hint=hint)
        if listed[name] != digest:
            raise SignatureError(f"{root}: '{name}' changed after signing (sha256 differs).",
                                 hint=hint)
    missing = [name for name in listed if name not in present]
    if MANIFEST not in present or (missing and not partial):
        raise SignatureError(f"{root}: signed files missing: {', '.join(missing) or MANIFEST}.",
                             hint=hint)
    return {"key_id": key_id(public), "files": len(present)}
