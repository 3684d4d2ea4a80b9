"""Preflight: from the device's facts and the bundle, what will be written, or why nothing.

Nothing is written to the device before this passes. Every problem found is listed at once
(not the first one only), so one round trip to the device is enough to fix them all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.backends import format_runtimes
from edgekit.bundle import MANIFEST, Artifact, Bundle, sha256_file
from edgekit.signing import SIGNATURE_FILE

from ..profiles import BoardProfile, load_profile, profiles
from .targets import FlashError

ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}
MIN_PYTHON = (3, 10)
SPACE_MARGIN = 1 << 20  # the manifest rewrite and state file need a little room too


@dataclass(frozen=True)
class StagedFile:
    """One file to send: where it is here, and what the device must find."""

    local: Path
    sha256: str
    size: int


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What preflight decided: board, artifact, files, and the version directory's name."""

    board: BoardProfile
    board_source: str
    artifact: Artifact
    version: str
    files: dict[str, StagedFile] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


def version_id(bundle: Bundle) -> str:
    """``<name>-<12 hex of the manifest's sha256>``: the same bundle always gets the same id.

    The name is reduced to [A-Za-z0-9._-]: it becomes a directory name on the device.
    """
    digest = hashlib.sha256((bundle.path / MANIFEST).read_bytes()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", bundle.manifest.name).strip("._") or "bundle"
    return f"{name[:40]}-{digest}"


def choose_board(facts: dict[str, Any], board: str | None = None) -> tuple[BoardProfile, str]:
    """The board profile: the one given, else the device's own detection, else its facts.

    Facts: the longest ``detect.device_tree_model`` found in /proc/device-tree/model, else the
    generic CPU profile of the device's architecture.
    """
    if board:
        return load_profile(board), "given"
    detected = (facts.get("board") or {}).get("name")
    if detected in profiles():
        return load_profile(detected), f"detected on the device: {facts['board']['reason']}"
    model = facts.get("device_tree_model") or ""
    matches = [p for p in profiles().values()
               if p.detect.get("device_tree_model") and p.detect["device_tree_model"] in model]
    if matches:
        best = max(matches, key=lambda p: len(p.detect["device_tree_model"]))
        return best, f"device-tree model '{model}'"
    arch = ARCH_ALIASES.get(facts.get("arch", ""), facts.get("arch", ""))
    if f"cpu-{arch}" in profiles():
        return load_profile(f"cpu-{arch}"), f"architecture {arch}"
    raise FlashError(f"Cannot tell which board this is (arch '{arch}', model '{model}').",
                     status="refused", hint="Name it with --board (or `board:` in the inventory).")


def make_plan(bundle: Bundle, facts: dict[str, Any], *, board: str | None = None,
              golden: bool = True, health: bool = True, check_space: bool = True) -> Plan:
    """Checks the device against the bundle and returns the plan, or refuses listing why.

    Raises:
        FlashError: status ``refused``, with every problem found.
    """
    profile, source = choose_board(facts, board)
    artifact = profile.choose(bundle)
    problems = _device_problems(facts, profile, artifact, health=health)
    files = _files(bundle, artifact)
    if golden and health and not bundle.manifest.provenance.parity.get("golden"):
        problems.append("the bundle has no golden inputs for the health check (re-export it "
                        "with edgekit export, or pass --no-golden)")
    if facts.get("require_signature") and SIGNATURE_FILE not in files:
        problems.append("the device requires signed bundles and this one is not signed "
                        "(edgekit sign BUNDLE --key KEY)")
    need = sum(f.size for f in files.values()) + SPACE_MARGIN
    if check_space and bundle_version_missing(bundle, facts) and facts["free_bytes"] < need:
        problems.append(f"not enough free disk: {facts['free_bytes']:,} bytes free at "
                        f"{facts['root']}, {need:,} needed")
    if problems:
        raise FlashError(
            f"Preflight refused {bundle.path} for board '{profile.name}' ({source}), artifact "
            f"{artifact.key}:\n  - " + "\n  - ".join(problems), status="refused",
            hint="Install what is missing on the device (samples/DEVICE_SETUP.md), or choose "
                 "another board/bundle.", details={"problems": problems})
    return Plan(board=profile, board_source=source, artifact=artifact,
                version=version_id(bundle), files=files, facts=facts)


def bundle_version_missing(bundle: Bundle, facts: dict[str, Any]) -> bool:
    return version_id(bundle) not in facts.get("installed", [])


def _device_problems(facts: dict[str, Any], profile: BoardProfile, artifact: Artifact, *,
                     health: bool) -> list[str]:
    problems = []
    arch = ARCH_ALIASES.get(facts.get("arch", ""), facts.get("arch", ""))
    if profile.arch and arch and profile.arch != arch:
        problems.append(f"the device is {arch} but board '{profile.name}' is {profile.arch}")
    version = tuple(int(x) for x in re.findall(r"\d+", facts.get("python", "0.0"))[:2])
    if version < MIN_PYTHON:
        problems.append(f"Python {facts.get('python')} at {facts.get('python_path')} is older "
                        f"than {'.'.join(map(str, MIN_PYTHON))}")
    packages = facts.get("packages", {})
    # Any one of the packages the format's backend declares (its runtime and fallbacks).
    candidates = list(dict.fromkeys(r.package for _, r in format_runtimes(artifact.format)))
    runtimes = [p for p in candidates if p in profile.runtimes] or candidates
    if not any(packages.get(p) for p in runtimes):
        problems.append(f"no runtime for {artifact.key}: install {' or '.join(runtimes)}")
    if health:
        for needed in ("edgekit", "numpy"):
            if not packages.get(needed):
                problems.append(f"'{needed}' is not installed (the health check runs edgekit "
                                "on the device)")
    if facts.get("require_signature"):
        if not packages.get("cryptography"):
            problems.append("the device requires signatures but 'cryptography' is missing")
        if not facts.get("trusted_keys"):
            problems.append("the device requires signatures but trusts no key (device.json)")
    return problems


def _files(bundle: Bundle, artifact: Artifact) -> dict[str, StagedFile]:
    """The manifest, the chosen artifact (and companions), the golden file, the signature."""
    files = {artifact.file: StagedFile(bundle.file(artifact), artifact.sha256, artifact.size)}
    names = [MANIFEST, *artifact.details.get("companions", {})]
    golden = bundle.manifest.provenance.parity.get("golden")
    if golden:
        names.append(golden)
    names.append(SIGNATURE_FILE)
    root = bundle.path.resolve()
    for name in names:
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise FlashError(f"{bundle.path}: '{name}' points outside the bundle.",
                             status="refused")
        if path.is_file():
            files[name] = StagedFile(path, sha256_file(path), path.stat().st_size)
        elif name == golden:
            raise FlashError(f"{bundle.path}: the golden file '{name}' named in the manifest "
                             "is missing.", status="refused", hint="Re-export the bundle.")
    return files
