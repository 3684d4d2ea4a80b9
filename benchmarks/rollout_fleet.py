"""How long `edgekit rollout` takes over 100 devices at --parallel 1, 8 and 32.

Each device is an install root behind one real OpenSSH server on 127.0.0.1 (Debian's sshd), its
Python is this interpreter: every step runs for real (SSH, SFTP, sha256 on the device, atomic
switch, golden health check with onnxruntime), canary then waves 10%,50%,100%, state in SQLite.
All devices share this machine's CPU, so the figure is the host's and the devices' work
overlapped on one machine, not what 100 separate boards would give.

    nice -n 10 .venv/bin/python benchmarks/rollout_fleet.py [--devices 100] [--parallel 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "devices")]

from edgekit.devices.flash.rollout import Rollout, RolloutSettings  # noqa: E402
from edgekit.devices.flash.rollout_state import RolloutStore  # noqa: E402
from flash_env import PYTHON, Lab, make_bundle  # noqa: E402


def _cpu_s() -> float:
    """This process's CPU (the host side: asyncssh, planning, SQLite); the devices' work runs
    under sshd and is not counted here."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run(lab: Lab, bundle: Path, work: Path, devices: int, parallel: int) -> dict:
    server = lab.servers[0]
    inventory = work / f"fleet-p{parallel}.yaml"
    inventory.write_text(yaml.safe_dump({
        "defaults": {"python": PYTHON, "identity": str(lab.client_key),
                     "known_hosts": str(lab.known_hosts), "board": "cpu-x86_64"},
        "hosts": {f"cam-{i:03d}": {"target": server.uri(work / f"p{parallel}" / f"d{i:03d}")}
                  for i in range(devices)}}))
    store = RolloutStore(work / f"p{parallel}.sqlite")
    settings = RolloutSettings(canary=1, waves=(0.1, 0.5, 1.0), parallel=parallel)
    rollout = Rollout.start(store, bundle, inventory, settings, {})
    cpu, start = _cpu_s(), time.perf_counter()
    summary = asyncio.run(rollout.run())
    wall = time.perf_counter() - start
    store.close()
    seconds = [d["seconds"] for d in summary["devices"] if d["seconds"]]
    return {"parallel": parallel, "devices": devices, "status": summary["status"],
            "wall_s": round(wall, 1), "per_device_median_s": round(statistics.median(seconds), 2),
            "host_process_cpu_s": round(_cpu_s() - cpu, 1), "counts": summary["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--parallel", default="1,8,32")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lab = Lab(work)
        lab.server()
        try:
            bundle = make_bundle(work / "bundle", name="fleet")
            rows = []
            for parallel in (int(p) for p in args.parallel.split(",")):
                row = run(lab, bundle, work, args.devices, parallel)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            lab.stop()
    print(f"\n{'parallel':>8} {'wall s':>8} {'per device s':>13} {'status':>10}")
    for r in rows:
        print(f"{r['parallel']:>8} {r['wall_s']:>8} {r['per_device_median_s']:>13} "
              f"{r['status']:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
