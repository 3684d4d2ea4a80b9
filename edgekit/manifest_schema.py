"""The schema of ``edgekit.json``, checked before any file of the bundle is touched.

A manifest is read with bounded size and nesting, parsed without NaN/Infinity, and validated
by jsonschema (Draft 2020-12); every problem is reported at once, one ``path: reason`` line
each, in a single :class:`~edgekit.errors.BundleError`.

Unknown keys are accepted everywhere (a newer minor version may add fields: a head name,
keypoint counts, preprocessing facts); a new field that old readers must understand is what
``schema_version`` is for. To type a new field, add it to the ``properties`` of its object
below: an optional field needs nothing else.

Why jsonschema rather than msgspec: msgspec stops at the first error, and a user who edits a
manifest should see every problem in one go. jsonschema is pure Python on top of one small
compiled wheel (rpds-py), published for aarch64 and armv7, and is imported only when a
manifest is read (not by ``import edgekit``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .errors import BundleError

#: A real manifest is a few kB (per-class accuracy of 80 classes included, ~40 kB).
MAX_MANIFEST_BYTES = 1 << 20
#: The deepest real manifest nests 5 levels (artifacts[].accuracy.per_class.<name>.ap50).
MAX_DEPTH = 32
#: Larger than any model an edge board can load; a bigger recorded size is a corrupt manifest.
MAX_FILE_BYTES = 1 << 36
#: How many problems one error lists before it says "and N more".
MAX_REPORTED = 25

_HINT = "Re-export the bundle (`edgekit export`), or fix the listed fields in its edgekit.json."

# A path inside the bundle: relative, '/'-separated, no '..', no control or surrogate
# characters, components of at most 255 characters (the limit of every common filesystem).
_SAFE_PART = "[^/\\\\:\x00-\x1f\x7f\ud800-\udfff]{1,255}"
_RELATIVE_PATH = {
    "type": "string",
    "maxLength": 1024,
    "pattern": f"^(?!.*(^|/)\\.\\.?(/|$))({_SAFE_PART}/)*{_SAFE_PART}$",
    "x-why": "must be a relative path inside the bundle (no leading '/', no '..', no control "
             "characters, parts of at most 255 characters)",
}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$",
           "x-why": "must be 64 lowercase hex digits (a sha256)"}
_SIZE = {"type": "integer", "minimum": 0, "maximum": MAX_FILE_BYTES}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 256,
         "pattern": "^[^\x00-\x1f\x7f\ud800-\udfff]+$",
         "x-why": "must be 1-256 printable characters"}
_DIM = {"type": "integer", "minimum": 1, "maximum": 16384}
_PIXEL_STAT = {"type": "array", "minItems": 3, "maxItems": 3,
               "items": {"type": "number", "minimum": -1e6, "maximum": 1e6}}


def _choice(values: list[str]) -> dict[str, Any]:
    """An enum that also takes the upper-case spelling (the enums parse case-insensitively)."""
    return {"enum": sorted({*values, *(v.upper() for v in values)})}


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of manifest version 1 (enums read from the bundle module's enums)."""
    from .bundle import SCHEMA_VERSION, ColorOrder, Format, Layout, Precision

    companion = {"oneOf": [
        _SHA256,  # manifests written before sizes were recorded
        {"type": "object", "required": ["sha256", "size"],
         "properties": {"sha256": _SHA256, "size": _SIZE}},
    ]}
    artifact = {
        "type": "object",
        "required": ["format", "precision", "file", "sha256", "size"],
        "properties": {
            "format": _choice([f.value for f in Format]),
            "precision": _choice([p.value for p in Precision]),
            "file": _RELATIVE_PATH,
            "sha256": _SHA256,
            "size": _SIZE,
            "accuracy": {"type": ["object", "null"]},
            "details": {"type": "object", "properties": {
                "companions": {"type": "object", "maxProperties": 64,
                               "propertyNames": _RELATIVE_PATH,
                               "additionalProperties": companion},
                "layout": _choice([m.value for m in Layout]),
            }},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "x-why": "must be a JSON object holding the manifest",
        "required": ["schema_version", "name", "labels"],
        "properties": {
            "schema_version": {"type": "integer", "enum": [SCHEMA_VERSION],
                               "x-why": f"must be {SCHEMA_VERSION}, the version this edgekit "
                                        "reads (re-export the bundle or upgrade edgekit)"},
            "name": _TEXT,
            "task": {"type": "string", "maxLength": 64},
            "labels": {"type": "array", "minItems": 1, "maxItems": 100000, "items": _TEXT},
            "input": {"type": "object", "properties": {
                "name": _TEXT,
                "shape": {"type": "array", "minItems": 4, "maxItems": 4, "items": _DIM},
                "layout": _choice([m.value for m in Layout]),
                "dtype": {"enum": ["float32", "float16", "uint8"]},
                "color": _choice([m.value for m in ColorOrder]),
                "letterbox": {"type": "boolean"},
                "pad_value": {"type": "integer", "minimum": 0, "maximum": 255},
                "mean": _PIXEL_STAT,
                "std": {**_PIXEL_STAT, "items": {"type": "number", "exclusiveMinimum": 0,
                                                 "maximum": 1e6}},
                "origin": {"type": "string", "maxLength": 4096},
            }},
            "output": {"type": "object", "properties": {
                "kind": {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$",
                         "x-why": "must be a head name (lower-case letters, digits, _ . -)"},
                "name": _TEXT,
                "conf_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "iou_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "max_detections": {"type": "integer", "minimum": 1, "maximum": 100000},
                "reason": {"type": "string", "maxLength": 4096},
                "keypoints": {"type": "integer", "minimum": 0, "maximum": 1000},
            }},
            "artifacts": {"type": "array", "maxItems": 256, "items": artifact},
            "provenance": {"type": "object", "properties": {
                "source": {"type": "string"},
                "source_sha256": {"type": "string"},
                "created": {"type": "string"},
                "tools": {"type": "object", "additionalProperties": {"type": "string"}},
                "calibration_sha256": {"type": ["string", "null"]},
                "parity": {"type": "object", "properties": {"golden": _RELATIVE_PATH}},
            }},
        },
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """Reads and validates a manifest file: bounded size, then :func:`parse_manifest`.

    Raises:
        BundleError: the file is unreadable, too large, not JSON, or breaks the schema.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read it: {exc.strerror or exc}.") from None
    return parse_manifest(raw, where=str(path))


def parse_manifest(raw: bytes | str, *, where: str = "manifest") -> dict[str, Any]:
    """Parses manifest text with bounded size and depth and validates it against the schema.

    Raises:
        BundleError: listing every problem found, or the one that stopped parsing.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{where} is larger than {MAX_MANIFEST_BYTES >> 10} kB; a manifest "
                          "is a few kB.", hint=_HINT)
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BundleError(f"{where} nests deeper than Python can parse.", hint=_HINT) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, 4300+ digit ints
        raise BundleError(f"{where} is not valid JSON: {exc}", hint=_HINT) from None
    if _depth(data) > MAX_DEPTH:
        raise BundleError(f"{where} nests deeper than {MAX_DEPTH} levels.", hint=_HINT)
    validate(data, where=where)
    return data


def validate(data: Any, *, where: str = "manifest") -> None:
    """Validates parsed manifest data; raises one BundleError listing every problem."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    # One line per problem: a field can break two rules that explain themselves the same way.
    found = list(dict.fromkeys(f"  {_json_path(e.absolute_path)}: {_reason(e)}" for e in errors))
    if not found:
        return
    lines = found[:MAX_REPORTED]
    if len(found) > MAX_REPORTED:
        lines.append(f"  ... and {len(found) - MAX_REPORTED} more")
    count = f"{len(found)} problem{'s' if len(found) > 1 else ''}"
    raise BundleError(f"{where} is not a valid edgekit manifest ({count}):\n" + "\n".join(lines),
                      hint=_HINT)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a manifest may hold")


def _depth(data: Any) -> int:
    """Nesting depth, computed without recursion (a deep document must not blow the stack)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(
            node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{_short(str(part))}"
    return out


def _reason(error: Any) -> str:
    """A readable reason: the schema's own words where it has them, a short instance else."""
    why = error.schema.get("x-why") if isinstance(error.schema, dict) else None
    if why and error.validator in ("pattern", "enum", "type", "not", "oneOf", "minLength",
                                   "maxLength"):
        return f"{why} (got {_short(repr(error.instance))})"
    if error.validator == "enum":
        return f"got {_short(repr(error.instance))}; allowed: {error.validator_value}"
    if error.validator in ("type", "minimum", "maximum", "exclusiveMinimum", "oneOf",
                           "maxItems", "minItems", "maxLength", "maxProperties"):
        subject = _short(repr(error.instance))
        return error.message.replace(repr(error.instance), subject, 1)
    return _short(error.message, 200)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit - 15]}... ({len(text)} chars)"
