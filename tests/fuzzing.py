"""Mutations of a real manifest and of a real model file, and how edgekit answers each.

Shared by the property tests (tests/core/test_manifest_fuzz.py, a few seconds) and the long run
(benchmarks/fuzz_manifest.py, 10,000 mutations). An answer is one of:
``refused`` (an EdgekitError: a clean message), ``accepted`` (opened and ran one frame), or
``other: <exception>`` (anything else: a bug).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

SAMPLE_MANIFEST = Path(__file__).parents[1] / "edgekit" / "sample" / "bundle" / "edgekit.json"

# Values that broke earlier parsers or escape checks: seen in a probe of the bundle loader.
HOSTILE: list[Any] = [
    None, True, False, -1, 0, 2**64, 10**400, float("inf"), float("nan"), 1e308, -0.0,
    "", "x", "\x00", "a\x00b", "x" * 100_000, "../../../../etc/passwd", "/proc/self/mem",
    "/dev/zero", "\ud800", "model.onnx/..", ".", "FP16", "NCHW", [], {}, [1, 2], {"a": 1},
    [1, 3, 640, 640], [1, 3, -320, 320], "abcdefg", ["a", 1, None],
]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document, containers included."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@st.composite
def manifest_mutations(draw: Any, base: dict[str, Any]) -> bytes:
    """A manifest with one to three of: a value replaced, a key deleted, a key added; or
    the JSON text itself truncated, nested deeply or spliced."""
    if draw(st.integers(0, 9)) == 0:
        text = json.dumps(base)
        kind = draw(st.sampled_from(["truncate", "splice", "nest", "huge"]))
        if kind == "truncate":
            return text[:draw(st.integers(0, len(text) - 1))].encode()
        if kind == "splice":
            at = draw(st.integers(0, len(text)))
            return (text[:at] + draw(st.text(min_size=1, max_size=8)) + text[at:]).encode(
                "utf-8", "surrogatepass")
        if kind == "nest":
            depth = draw(st.sampled_from([33, 1000, 100_000]))
            return ("[" * depth + "]" * depth).encode()
        return ('{"schema_version": 1, "x": ' + "9" * 5000 + "}").encode()
    data = json.loads(json.dumps(base))
    paths = _paths(data)[1:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation of this draw changed the way there
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        value = draw(st.sampled_from(HOSTILE) | json_values)
        try:
            if op == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif op == "add" and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=12))] = value
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(data).encode("utf-8", "surrogatepass")


@st.composite
def model_mutations(draw: Any, model: bytes) -> bytes:
    """A model file truncated, with bytes flipped, or replaced by random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        return model[:draw(st.integers(0, len(model) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=4096))
    data = bytearray(model)
    for _ in range(draw(st.integers(1, 16))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def make_base(root: Path) -> tuple[Path, dict[str, Any]]:
    """A real bundle for the sample manifest: a tiny ONNX model of its input size and classes.

    Returns the bundle directory and its (valid) manifest, the starting point of mutations.
    """
    from helpers import make_yolo_onnx

    from edgekit.bundle import sha256_file

    bundle = root / "bundle"
    bundle.mkdir(parents=True)
    manifest = json.loads(SAMPLE_MANIFEST.read_text())
    model = make_yolo_onnx(bundle / "model.onnx", imgsz=manifest["input"]["shape"][2],
                           num_classes=len(manifest["labels"]))
    manifest["artifacts"][0].update(sha256=sha256_file(model), size=model.stat().st_size)
    manifest["provenance"]["parity"].pop("golden", None)
    return bundle, manifest


def open_and_run(model: Path) -> str:
    """Opens a bundle or model file and runs one frame: 'refused', 'accepted' or 'other: ...'."""
    from edgekit.detector import Detector
    from edgekit.errors import EdgekitError

    try:
        detector = Detector.open(model)
        detector(np.zeros((48, 64, 3), np.uint8))
    except EdgekitError:
        return "refused"
    except Exception as exc:  # the finding: anything that is not edgekit's own error
        return f"other: {type(exc).__name__}: {str(exc)[:200]}"
    return "accepted"


def try_manifest(bundle: Path, raw: bytes) -> str:
    (bundle / "edgekit.json").write_bytes(raw)
    return open_and_run(bundle)


def try_model(root: Path, raw: bytes, suffix: str = ".onnx") -> str:
    path = root / f"fuzzed{suffix}"
    path.write_bytes(raw)
    try:
        return open_and_run(path)
    finally:
        path.unlink(missing_ok=True)
