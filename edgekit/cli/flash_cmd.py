"""`edgekit flash`, `status`, `sign`, `keygen`: put bundles on devices, safely."""

from __future__ import annotations

import asyncio

import click
from rich.text import Text

from ..errors import EdgekitError
from ._options import json_file
from ._ui import console, say, table, write_json
from ._ui import results as out

STATUS_STYLE = {"ok": "green", "rolled-back": "yellow", "refused": "red",
                "unreachable": "red", "failed": "red"}


def _ssh_options(func):
    for option in reversed([
        click.option("--identity", type=click.Path(dir_okay=False), default=None,
                     help="SSH private key (default: the SSH agent and ~/.ssh keys)."),
        click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
                     help="known_hosts file (default ~/.ssh/known_hosts). Host keys are "
                          "always checked."),
        click.option("--accept-new-host-key", is_flag=True,
                     help="Trust a host not yet in known_hosts and record its key (a CHANGED "
                          "key is still refused)."),
        click.option("--remote-python", default=None,
                     help="The device's Python (default python3; a venv's python often)."),
        click.option("--no-golden", is_flag=True,
                     help="Health check without replaying the bundle's golden inputs."),
    ]):
        func = option(func)
    return func


def _flash_options(func):
    """--board, --keep, --max-latency-ms, --verdict-timeout: `flash` and `rollout` share them."""
    for option in reversed([
        click.option("--board", default=None,
                     help="Board profile (default: the inventory's, else detected on the "
                          "device)."),
        click.option("--keep", type=click.IntRange(1), default=3, show_default=True,
                     help="Versions kept on the device."),
        click.option("--max-latency-ms", type=float, default=2000.0, show_default=True,
                     help="Health check: median full-detection latency limit."),
        click.option("--verdict-timeout", type=click.FloatRange(min=0), default=120.0,
                     show_default=True, help="Where `edgekit serve` runs on the device: "
                     "seconds to wait for its verdict on live frames (0: do not wait)."),
    ]):
        func = option(func)
    return func


def _target(uri: str, identity, known_hosts, accept_new_host_key, remote_python):
    from ..devices.flash import parse_target

    return parse_target(uri, identity=identity, known_hosts=known_hosts,
                        accept_new_host_key=accept_new_host_key or None, python=remote_python)


def _show(results, title: str) -> None:
    rows = [(r.target, Text(r.status, style=STATUS_STYLE.get(r.status, "white")), r.active,
             r.board, r.artifact, f"{r.seconds:.1f}s",
             (r.reason or "").splitlines()[0] if r.reason else "") for r in results]
    out.print(table(title, ["host", "result", "active", "board", "artifact", "time",
                                "reason"], rows))


@click.command("flash")
@click.argument("bundle", required=False)
@click.argument("target", required=False)
@click.option("--inventory", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fleet inventory (YAML): flash every host in it.")
@click.option("--parallel", type=click.IntRange(1), default=4, show_default=True,
              help="Devices flashed at once (fleet).")
@click.option("--rollback", "rollback_target", default=None, metavar="TARGET",
              help="Switch TARGET back to its previous healthy version instead.")
@_flash_options
@click.option("--no-health", is_flag=True,
              help="Skip the health check (an SD card that cannot run here).")
@_ssh_options
@json_file
def flash_command(bundle, target, inventory, parallel, rollback_target, board, keep,
                  max_latency_ms, no_health, verdict_timeout, identity, known_hosts,
                  accept_new_host_key, remote_python, no_golden, json_path) -> None:
    """Flash BUNDLE onto TARGET (ssh://user@host[:port][/root], user@host, or a path).

    Preflight, upload, sha256 check, atomic switch, health check on the device, automatic
    rollback. With --inventory, flash a whole fleet; with --rollback TARGET, go back.
    """
    from ..devices.flash import (
        FlashSettings,
        deploy_fleet,
        flash_async,
        load_inventory,
        rollback_async,
    )

    ssh = (identity, known_hosts, accept_new_host_key, remote_python)
    if rollback_target:
        result = asyncio.run(rollback_async(_target(rollback_target, *ssh), golden=not no_golden))
        _finish([result], f"rollback {rollback_target}", json_path)
        return
    if not bundle or not (target or inventory):
        raise EdgekitError("Give BUNDLE and TARGET, or BUNDLE --inventory FILE.",
                           hint="e.g. edgekit flash out/bundle ssh://pi@cam-01/opt/edgekit")
    settings = FlashSettings(board=board, keep=keep, health=not no_health,
                             golden=not no_golden, max_latency_ms=max_latency_ms,
                             verdict_timeout_s=verdict_timeout)
    if inventory:
        hosts = load_inventory(inventory, identity=identity, known_hosts=known_hosts,
                               python=remote_python,
                               accept_new_host_key=accept_new_host_key or None)
        with console.status(Text(f"flashing {len(hosts)} devices, {parallel} at a time")):
            results = asyncio.run(deploy_fleet(bundle, hosts, settings=settings,
                                               parallel=parallel))
        _finish(results, f"flash {bundle} ({len(hosts)} devices)", json_path)
        return
    with console.status(Text(f"flashing {bundle} onto {target}")):
        result = asyncio.run(flash_async(bundle, _target(target, *ssh), settings=settings))
    _finish([result], f"flash {bundle}", json_path)


def _finish(results, title: str, json_path) -> None:
    _show(results, title)
    write_json(json_path, {"results": [r.to_dict() for r in results]})
    failed = [r for r in results if not r.ok]
    if len(results) == 1 and failed:
        raise EdgekitError(failed[0].reason or failed[0].status)
    if failed:
        raise EdgekitError(f"{len(failed)} of {len(results)} devices did not take the update "
                           f"({', '.join(sorted({r.status for r in failed}))}); each one "
                           "keeps the version it had.",
                           hint="Read the reasons above; fix and re-run (done hosts are "
                                "skipped quickly: an installed version is not re-sent).")


@click.command("status")
@click.argument("target")
@click.option("--check", is_flag=True, help="Also re-run the health check of the active "
                                            "version now.")
@_ssh_options
@json_file
def status_command(target, check, identity, known_hosts, accept_new_host_key, remote_python,
                   no_golden, json_path) -> None:
    """Show what TARGET runs: the active version, the kept ones, the last health check."""
    from ..devices.flash import status_async

    result = asyncio.run(status_async(
        _target(target, identity, known_hosts, accept_new_host_key, remote_python),
        check=check, golden=not no_golden))
    if result.status in ("unreachable", "refused") or not result.details:
        raise EdgekitError(result.reason or "status failed")
    info = result.details
    health = info.get("check") or info.get("last_health") or {}
    rows = [("active", info.get("active")), ("kept", ", ".join(info.get("kept", []))),
            ("staging", ", ".join(info.get("staging", [])) or "-"),
            ("health", "ok" if health.get("ok") else f"FAILED: {health.get('reason')}"
             if health else "-"),
            ("latency", f"{health['latency_ms']:.1f} ms" if health.get("latency_ms") else "-")]
    rows += _service_rows(info.get("service"))
    for entry in info.get("history", [])[-5:]:
        why = (entry.get("health") or {}).get("reason") if entry["action"] == "rolled-back" \
            else None
        rows.append((entry["time"], f"{entry['action']} {entry['version']}"
                     + (f": {why}" if why else "")))
    out.print(table(f"{target} ({info.get('root')})", ["", ""], rows))
    write_json(json_path, info)
    if check and not result.ok:
        raise EdgekitError(f"{target}: the active version fails its health check: "
                           f"{result.reason}", hint="Roll back: edgekit flash --rollback TARGET")


def _service_rows(service: dict | None) -> list[tuple[str, str]]:
    """What `edgekit serve` on the device says (devices/service), if one ever ran there."""
    if not service:
        return [("service", "none")]
    state = "running" if service.get("alive") else "not running"
    rows = [("service", f"{state} {service.get('version') or ''}".strip())]
    for verdict in service.get("verdicts", [])[-3:]:
        reason = f": {verdict['reason']}" if verdict.get("reason") else ""
        rows.append(("live verdict", f"{verdict.get('verdict')} {verdict['version']}{reason}"))
    return rows


@click.command("sign")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="ed25519 private key from `edgekit keygen`.")
def sign_command(bundle: str, key_path: str) -> None:
    """Sign every file of BUNDLE with an ed25519 key (writes BUNDLE/edgekit.sig)."""
    from ..bundle import Bundle
    from ..signing import sign_bundle

    Bundle.load(bundle)  # never sign something that does not verify
    record = sign_bundle(bundle, key_path)
    say("signed {} files of {} with key {}", len(record["statement"]["files"]), bundle,
        record["key_id"])


@click.command("keygen")
@click.argument("keyfile", type=click.Path(dir_okay=False))
def keygen_command(keyfile: str) -> None:
    """Create an ed25519 signing key pair: KEYFILE (private) and KEYFILE.pub."""
    from ..signing import generate_keypair, read_public_key

    private, public = generate_keypair(keyfile)
    say("private key: {} (keep it secret)\npublic key:  {}\ntrust it on a device: add \"{}\" "
        "to trusted_keys in <install root>/device.json", private, public,
        read_public_key(public))
