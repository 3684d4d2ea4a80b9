"""How long `edgekit bench --inventory` takes on a fleet of loopback devices, --parallel 1 vs N;
the FLOPs / utilisation of a bundle on this host (matmul probe's peak, same threads); and the
two-board table one `edgekit bench --inventory` command prints.

Each "device" is a real OpenSSH server on 127.0.0.1 (Debian's sshd, own config and keys) whose
Python is this interpreter: facts, SFTP upload with sha256 on the device, the on-board bench
(load, first inference, timed runs, golden replay, matmul probe), results streamed back,
scratch removed. All devices share this machine's CPU, so the parallel figure shows how the
orchestration overlaps, not what N separate boards would give; and the latency each device
reports at --parallel 8 is that of 8 benches sharing 2 cores (the table says so).

    python benchmarks/remote_bench_fleet.py [--bundle DIR|sample] [--devices 8] [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "devices")]

from edgekit.devices.flash import Host  # noqa: E402
from edgekit.devices.remote.bench import RemoteSettings, bench_fleet  # noqa: E402
from flash_env import Lab  # noqa: E402


async def _fleet(lab: Lab, bundle: str, work: Path, devices: int, parallel: int,
                 runs: int) -> tuple[float, list]:
    servers = lab.servers
    hosts = [Host(name=f"dev{i}", target=lab.target(servers[i % len(servers)],
                                                     work / f"p{parallel}" / f"dev{i}"))
             for i in range(devices)]
    settings = RemoteSettings(runs=runs, warmup=5, peak_seconds=0.5)
    start = time.perf_counter()
    results = await bench_fleet(bundle, hosts, settings=settings, parallel=parallel)
    return time.perf_counter() - start, results


def _two_board_table(lab: Lab, bundle: str, work: Path, runs: int) -> str:
    """The CLI's one command on an inventory of two boards (two sshd 'devices' of this host
    with their own install roots), with a 20-image validation set: its Markdown table."""
    import yaml

    from edgekit.cli import main as cli
    from edgekit.data.synth import write_dataset

    hosts = {name: {"target": lab.servers[i].uri(work / name)}
             for i, name in enumerate(("board-a", "board-b"))}
    work.mkdir(parents=True, exist_ok=True)
    inventory = work / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {
        "python": sys.executable, "identity": str(lab.client_key),
        "known_hosts": str(lab.known_hosts)}, "hosts": hosts}))
    val = write_dataset(work / "val", count=20, seed=12345, width=320, height=320)
    table = work / "boards.md"
    cli(["bench", bundle, "--inventory", str(inventory), "--parallel", "1", "--runs",
         str(runs), "--val", str(val), "--markdown", str(table), "--no-history"])
    return table.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="sample")
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--servers", type=int, default=4, help="sshd processes to spread over")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    figures: dict = {"bundle": args.bundle, "devices": args.devices, "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lab = Lab(work)
        try:
            for _ in range(args.servers):
                lab.server()
            print(_two_board_table(lab, args.bundle, work / "table", args.runs))
            # One device alone first: the figures of this host without sharing the CPU.
            _, [alone] = asyncio.run(_fleet(lab, args.bundle, work / "alone", 1, 1, args.runs))
            assert alone.ok, alone.reason
            r = alone.results[0]
            figures["this_host"] = {
                "artifact": r.artifact, "p50_ms": r.latency_ms["p50"], "threads": r.threads,
                "load_ms": r.load_ms, "first_inference_ms": r.first_inference_ms,
                "flops": r.compute["flops"], "flops_method": r.compute["flops_method"],
                "gflops": r.compute["gflops"], "peak_gflops": r.compute["peak_gflops"],
                "peak_n": r.compute["peak"].get("n"), "utilisation": r.compute["utilisation"],
                "cpu": r.fingerprint["cpu_model"]}
            for parallel in sorted({1, args.parallel}):
                seconds, results = asyncio.run(
                    _fleet(lab, args.bundle, work, args.devices, parallel, args.runs))
                bad = [d for d in results if not d.ok]
                assert not bad, [(d.device, d.reason) for d in bad]
                figures[f"parallel_{parallel}"] = {
                    "wall_s": seconds,
                    "device_s_median": sorted(d.seconds for d in results)[len(results) // 2],
                    "p50_ms_median": sorted(d.results[0].latency_ms["p50"]
                                            for d in results)[len(results) // 2]}
        finally:
            lab.stop()
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
