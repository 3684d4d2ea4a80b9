"""The device side of `edgekit flash`: one script, run on the device by its own Python.

The host uploads this file next to the installed models and runs it with the device's
interpreter (``--remote-python``). It uses only the standard library at import, so ``facts``
works on a device where edgekit or a runtime is still missing (preflight must be able to say
so); the health check and signature check import edgekit from the device's environment.

Layout under the install root::

    versions/<id>/      one directory per installed bundle (the files this board needs)
    staging/<id>/       uploads in progress; resumable, never loaded by anything
    current -> versions/<id>   switched by rename(2) of a new symlink: atomic
    state.json          history of activations and the last health check
    device.json         the device's policy: {"require_signature": true, "trusted_keys": [...]}
    service.json        written by `edgekit serve` (devices/service): heartbeat and verdicts
    .lock               held while a command switches versions (the service waits on it)

Every command prints one JSON object on stdout. Exit status: 0 ok, 1 the step failed (the
JSON says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MANIFEST = "edgekit.json"
SOURCE_MANIFEST = "edgekit.source.json"
SIGNATURE_FILE = "edgekit.sig"
# Besides these, `facts --package P` names the runtime packages to report: the host reads them
# from edgekit's backends (this script cannot import edgekit: it may be missing here).
PACKAGES = ("edgekit", "numpy", "opencv-python-headless", "opencv-python", "cryptography")


def _emit(data: dict[str, Any], code: int = 0) -> int:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
    return code


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Writes JSON atomically: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


@contextlib.contextmanager
def _locked(root: Path, *, blocking: bool = True):
    """Holds ``root/.lock`` (flock): one writer of ``current`` and state.json at a time.

    The device service takes it too, so it neither loads a version the agent is still
    health-checking nor rolls back while a flash writes the history.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)  # closing releases the lock


SERVICE_STALE_S = 15.0  # a heartbeat older than this: the service is not running


def _service(root: Path) -> dict[str, Any] | None:
    """The device service's own record (service.json), with ``alive`` worked out."""
    data = _read_json(root / "service.json", {})
    if not data:
        return None
    try:
        os.kill(int(data.get("pid", 0)), 0)
        running = True
    except (OSError, ValueError):
        running = False
    fresh = time.time() - float(data.get("heartbeat", 0)) < SERVICE_STALE_S
    data["alive"] = running and fresh and data.get("status") != "stopped"
    return data


def _state(root: Path) -> dict[str, Any]:
    return _read_json(root / "state.json", {"history": [], "last_health": None})


def _current(root: Path) -> str | None:
    link = root / "current"
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def _switch(root: Path, version: str) -> None:
    """Points ``current`` at versions/<version>: a new symlink renamed over the old one.

    rename(2) replaces the link in one step, so a reader (or a power cut) sees either the old
    target or the new one, never a missing link.
    """
    tmp = root / f".current.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.join("versions", version), tmp)
    os.replace(tmp, root / "current")
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _device_tree_model() -> str:
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return Path(path).read_bytes().rstrip(b"\0").decode(errors="replace").strip()
        except OSError:
            continue
    return ""


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _packages(runtimes: list[str]) -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in dict.fromkeys([*PACKAGES, *runtimes]):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _detected_board() -> dict[str, str] | None:
    """The board edgekit's own detection names (devices/detect.py), where the device has it.

    OpenVINO is probed (about 0.5 s) only where it is installed: only the NPU profile needs it.
    """
    try:
        from importlib.util import find_spec

        from edgekit.devices.detect import detect_board, gather_facts
        found = detect_board(gather_facts(probe=find_spec("openvino") is not None))
    except Exception as exc:  # noqa: BLE001 - absent, old or unmatched: the host decides
        return {"name": None, "reason": f"not detected: {exc}"}
    return {"name": found.profile.name, "reason": found.reason}


def _free_bytes(root: Path) -> int:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def cmd_facts(args: argparse.Namespace) -> int:
    root = Path(args.root)
    policy = _read_json(root / "device.json", {})
    return _emit({
        "arch": platform.machine(), "os": _os_name(), "python": platform.python_version(),
        "python_path": sys.executable, "device_tree_model": _device_tree_model(),
        "packages": _packages(args.package), "free_bytes": _free_bytes(root),
        "root": str(root.absolute()),
        "board": None if args.no_detect else _detected_board(), "current": _current(root),
        "installed": sorted(p.name for p in (root / "versions").glob("*"))
        if (root / "versions").is_dir() else [],
        "require_signature": bool(policy.get("require_signature")),
        "trusted_keys": len(policy.get("trusted_keys", [])),
        "time": time.time(), "service": _service(root),
    })


def _verify_staged(stage: Path, plan: dict[str, Any]) -> list[str]:
    """Checks each staged file's size and sha256 against the plan; removes bad ones."""
    bad = []
    for name, expected in plan["files"].items():
        path = stage / name
        if not path.resolve().is_relative_to(stage.resolve()):
            raise OSError(f"'{name}' leaves the staging directory; refusing it")
        if not path.is_file() or path.stat().st_size != expected["size"] or \
                _sha256(path) != expected["sha256"]:
            bad.append(name)
            if path.is_file():
                path.unlink()  # a corrupt file must be uploaded again, not resumed
    return bad


def _check_signature(stage: Path, policy: dict[str, Any]) -> dict[str, Any]:
    if not policy.get("require_signature"):
        signed = (stage / SIGNATURE_FILE).is_file()
        return {"required": False, "signed": signed}
    from edgekit.signing import verify_bundle

    result = verify_bundle(stage, list(policy.get("trusted_keys", [])), partial=True)
    return {"required": True, "signed": True, **result}


def _prune_manifest(directory: Path, artifact_file: str) -> None:
    """Keeps the signed manifest as edgekit.source.json; edgekit.json lists only what is here.

    The device holds one artifact of the bundle; a manifest naming files that are absent would
    make every `Bundle.load` on the device fail its verification.
    """
    source = directory / MANIFEST
    data = json.loads(source.read_text())
    os.replace(source, directory / SOURCE_MANIFEST)
    data["artifacts"] = [a for a in data.get("artifacts", []) if a.get("file") == artifact_file]
    _write_json(directory / MANIFEST, data)


def _health(directory: Path, health: dict[str, Any]) -> dict[str, Any]:
    """Runs the health check in a child process: a runtime that crashes or hangs cannot take
    the rollback down with it."""
    if health.get("skip"):
        return {"ok": True, "skipped": True,
                "reason": "health check skipped (--no-health): check it once the device runs"}
    cmd = [sys.executable, os.path.abspath(__file__), "health", str(directory),
           "--max-latency-ms", str(health.get("max_latency_ms", 2000.0)),
           "--runs", str(health.get("runs", 10))]
    if not health.get("golden", True):
        cmd.append("--no-golden")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=float(health.get("timeout_s", 300)))
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": "health check timed out"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"ok": False, "reason": f"health check crashed (exit {proc.returncode}): "
                                       + " | ".join(tail)}


def _prune_versions(root: Path, state: dict[str, Any], keep: int) -> list[str]:
    """Deletes the oldest versions beyond ``keep`` (never the active one)."""
    active = _current(root)
    order = [h["version"] for h in state["history"]]
    recent: list[str] = []
    for version in reversed(order):
        if version not in recent:
            recent.append(version)
    keepers = set(recent[:max(keep, 1)]) | {active}
    removed = []
    for entry in sorted((root / "versions").iterdir()):
        if entry.name not in keepers:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _record(root: Path, state: dict[str, Any], **entry: Any) -> None:
    state["history"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             **entry})
    state["history"] = state["history"][-50:]
    _write_json(root / "state.json", state)


def cmd_activate(args: argparse.Namespace) -> int:
    root = Path(args.root)
    plan = json.loads(Path(args.plan).read_text())
    version = plan["version"]
    stage = root / "staging" / version
    target = root / "versions" / version
    state = _state(root)
    previous = _current(root)
    policy = _read_json(root / "device.json", {})
    base = {"version": version, "previous": previous, "active": previous}
    try:
        if not target.is_dir():
            bad = _verify_staged(stage, plan)
            if bad:
                return _emit({**base, "ok": False, "stage": "verify", "bad_files": bad,
                              "reason": f"sha256 mismatch on the device: {', '.join(bad)}"}, 1)
            try:
                signature = _check_signature(stage, policy)
            except Exception as exc:  # noqa: BLE001 - SignatureError or a missing cryptography
                return _emit({**base, "ok": False, "stage": "signature",
                              "reason": getattr(exc, "message", str(exc))}, 1)
            _prune_manifest(stage, plan["artifact"]["file"])
            (root / "versions").mkdir(exist_ok=True)
            os.replace(stage, target)
            _fsync_dir(root / "versions")
        else:
            signature = {"required": bool(policy.get("require_signature")),
                         "note": "already installed"}
        _switch(root, version)
    except OSError as exc:
        if _current(root) != previous and previous:
            _switch(root, previous)
        return _emit({**base, "ok": False, "stage": "install",
                      "reason": f"{exc.strerror or exc} ({exc.filename or root})"}, 1)
    Path(args.plan).unlink(missing_ok=True)  # installed: the plan has served
    health = _health(target, plan.get("health", {}))
    if health.get("ok"):
        _record(root, state, version=version, action="activate", health=health,
                signature=signature)
        state["last_health"] = {"version": version, **health}
        removed = _prune_versions(root, state, int(plan.get("keep", 3)))
        _write_json(root / "state.json", state)
        return _emit({**base, "ok": True, "active": version, "health": health,
                      "signature": signature, "removed": removed})
    if previous:
        _switch(root, previous)
    else:
        (root / "current").unlink(missing_ok=True)
    state["last_health"] = {"version": version, **health}
    _record(root, state, version=version, action="rolled-back", health=health,
            restored=previous)
    return _emit({**base, "ok": False, "stage": "health", "rolled_back": True,
                  "active": _current(root), "health": health,
                  "reason": f"health check failed: {health.get('reason')}"}, 1)


def cmd_rollback(args: argparse.Namespace) -> int:
    root = Path(args.root)
    state = _state(root)
    active = _current(root)
    installed = {p.name for p in (root / "versions").glob("*")} if (root / "versions").is_dir() \
        else set()
    good = [h["version"] for h in state["history"] if h.get("action") in ("activate", "rollback")]
    last = {h["version"]: h.get("action") for h in state["history"]}  # its latest record
    candidates = [v for v in reversed(good) if v != active and v in installed
                  and last.get(v) != "rolled-back"]  # the service failed it on live frames
    if not candidates:
        return _emit({"ok": False, "active": active,
                      "reason": "no earlier healthy version is kept on the device"}, 1)
    target = candidates[0]
    _switch(root, target)
    health = _health(root / "versions" / target, {"golden": not args.no_golden})
    state["last_health"] = {"version": target, **health}
    _record(root, state, version=target, action="rollback", health=health, replaced=active)
    return _emit({"ok": bool(health.get("ok")), "active": target, "replaced": active,
                  "health": health,
                  "reason": None if health.get("ok") else health.get("reason")},
                 0 if health.get("ok") else 1)


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.root)
    state = _state(root)
    active = _current(root)
    versions = sorted(p.name for p in (root / "versions").glob("*")) \
        if (root / "versions").is_dir() else []
    data = {"ok": True, "root": str(root.absolute()), "active": active, "kept": versions,
            "staging": sorted(p.name for p in (root / "staging").glob("*") if p.is_dir())
            if (root / "staging").is_dir() else [],
            "last_health": state.get("last_health"), "history": state["history"][-10:],
            "service": _service(root)}
    if args.check and active:
        health = _health(root / "versions" / active, {"golden": not args.no_golden})
        data["check"] = health
        data["ok"] = bool(health.get("ok"))
    return _emit(data, 0 if data["ok"] else 1)


def cmd_discard(args: argparse.Namespace) -> int:
    """Removes one version's staging directory (after a full disk: give the space back)."""
    stage = Path(args.root) / "staging" / Path(args.version).name
    shutil.rmtree(stage, ignore_errors=True)
    (stage.parent / f"{stage.name}.plan.json").unlink(missing_ok=True)
    return _emit({"ok": True, "removed": str(stage)})


FINAL_VERDICTS = ("healthy", "rolled-back", "load-failed", "superseded")


def cmd_verdict(args: argparse.Namespace) -> int:
    """Waits for the device service's verdict on ``--version`` (switched after ``--since``)."""
    root = Path(args.root)
    deadline = time.monotonic() + args.timeout
    while True:
        service = _service(root)
        if not service or not service.get("alive"):
            return _emit({"ok": True, "service": False, "verdict": None,
                          "reason": "no edgekit service runs on the device"})
        for entry in reversed(service.get("verdicts", [])):
            if entry.get("version") == args.version and entry.get("since", 0) >= args.since \
                    and entry.get("verdict") in FINAL_VERDICTS:
                ok = entry["verdict"] == "healthy"
                return _emit({"ok": ok, "service": True, **entry}, 0 if ok else 1)
        if time.monotonic() >= deadline:
            return _emit({"ok": False, "service": True, "verdict": "timeout",
                          "version": args.version, "active": _current(root),
                          "reason": f"the service gave no verdict within {args.timeout:.0f} s"},
                         1)
        time.sleep(0.2)


def cmd_health(args: argparse.Namespace) -> int:
    try:
        from edgekit.devices.flash.health import check_bundle
    except ImportError as exc:
        return _emit({"ok": False, "reason": f"edgekit is not importable on the device: {exc}"},
                     1)
    result = check_bundle(args.directory, golden=not args.no_golden,
                          max_latency_ms=args.max_latency_ms, runs=args.runs)
    return _emit(result, 0 if result["ok"] else 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgekit-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("facts", "activate", "rollback", "status", "discard"):
        p = sub.add_parser(name)
        p.add_argument("--root", required=True)
        if name == "discard":
            p.add_argument("--version", required=True)
        if name == "facts":  # the board is known (--board, inventory): skip the ~0.5 s probe
            p.add_argument("--no-detect", action="store_true")
            p.add_argument("--package", action="append", default=[])
        if name == "activate":
            p.add_argument("--plan", required=True)
        if name in ("rollback", "status"):
            p.add_argument("--no-golden", action="store_true")
        if name == "status":
            p.add_argument("--check", action="store_true")
    p = sub.add_parser("verdict")
    p.add_argument("--root", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--since", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p = sub.add_parser("health")
    p.add_argument("directory")
    p.add_argument("--no-golden", action="store_true")
    p.add_argument("--max-latency-ms", type=float, default=2000.0)
    p.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    handler = {"facts": cmd_facts, "activate": cmd_activate, "rollback": cmd_rollback,
               "status": cmd_status, "health": cmd_health, "discard": cmd_discard,
               "verdict": cmd_verdict}[args.command]
    if args.command in ("activate", "rollback"):
        with _locked(Path(args.root)):
            return handler(args)
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
