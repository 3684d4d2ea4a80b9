"""How long `edgekit flash` takes: one loopback device, and a fleet with --parallel 8 vs 1.

Each "device" is a real OpenSSH server on 127.0.0.1 (Debian's sshd, own config and keys) whose
Python is this interpreter, so every step runs for real: SSH + SFTP upload, sha256 on the
device, atomic switch, health check (golden replay + latency) with edgekit on the device.
All devices share this machine's CPU: the fleet figure shows the overlap of network and
device work, not what N separate boards would give.

    python benchmarks/flash_timing.py [--bundle DIR] [--devices 8] [--repeat 3] [--json F]

Without --bundle it uses the sample bundle, or (if it has not been built yet) a stand-in
bundle of the tiny test detector padded to --standin-mb, with golden inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "devices")]

from edgekit.devices.flash import FlashSettings, Host, deploy_fleet, flash_async  # noqa: E402
from flash_env import Lab, make_bundle  # noqa: E402


def _bundle(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    from edgekit.detector import SAMPLE_BUNDLE

    if args.bundle:
        return Path(args.bundle), "given"
    if (SAMPLE_BUNDLE / "edgekit.json").is_file():
        return SAMPLE_BUNDLE, "the sample bundle"
    size = int(args.standin_mb * 1e6)
    return (make_bundle(work / "standin", name="standin", pad_bytes=size),
            f"stand-in ({args.standin_mb} MB tiny detector; sample bundle not built yet)")


async def _single(lab: Lab, bundle: Path, work: Path, repeat: int) -> dict[str, float]:
    server = lab.servers[0]
    cold, warm = [], []
    for i in range(repeat):
        target = lab.target(server, work / f"single{i}")
        result = await flash_async(bundle, target)
        assert result.ok, result.reason
        cold.append(result.seconds)
        again = await flash_async(bundle, target)  # installed already: checks + health only
        assert again.ok and again.sent_bytes == 0, again.reason
        warm.append(again.seconds)
    return {"cold_s": statistics.median(cold), "reflash_s": statistics.median(warm),
            "bytes": result.sent_bytes}


async def _fleet(lab: Lab, bundle: Path, work: Path, parallel: int) -> float:
    hosts = [Host(name=f"dev{i}", target=lab.target(s, work / f"fleet-p{parallel}-{i}"))
             for i, s in enumerate(lab.servers)]
    start = time.perf_counter()
    results = await deploy_fleet(bundle, hosts, settings=FlashSettings(), parallel=parallel)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.ok]
    assert not bad, [(r.target, r.reason) for r in bad]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--standin-mb", type=float, default=6.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flash-bench-") as tmp:
        work = Path(tmp)
        lab = Lab(work)
        try:
            for _ in range(args.devices):
                lab.server()
            bundle, what = _bundle(args, work)
            single = asyncio.run(_single(lab, bundle, work, args.repeat))
            p1 = asyncio.run(_fleet(lab, bundle, work, 1))
            pn = asyncio.run(_fleet(lab, bundle, work, args.devices))
        finally:
            lab.stop()
    figures = {"bundle": what, "sent_bytes": single["bytes"], "devices": args.devices,
               "single_cold_s": round(single["cold_s"], 2),
               "single_reflash_s": round(single["reflash_s"], 2),
               "fleet_parallel_1_s": round(p1, 2),
               f"fleet_parallel_{args.devices}_s": round(pn, 2),
               "speedup": round(p1 / pn, 2)}
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
