"""The reference model's 3x3 export as the README's Markdown table, with date and machine.

    python benchmarks/reference_table.py [--json out.json] [--readme README.md]
        [--from-json earlier.json] [export_matrix.py options, e.g. --threads 2 --runs 200]

Runs ``benchmarks/export_matrix.py --model reference`` (onnx/openvino/tflite x fp32/fp16/int8,
calibration seed 4242, validation ``edgekit sample-data --count 300 --seed 12345``, accuracy
gate and fallbacks included) in a child process, then prints, per format x precision:
mAP@0.5:0.95, its delta vs fp32, latency p50 at the given threads, speed-up vs the same
format's fp32, and size; above the table the whole export's wall time and peak memory, the
date, this machine's CPU and the load average around the run (latency on a shared machine
moves with its load). ``--readme`` writes the table between the
``<!-- reference-table -->`` markers of that file; ``--from-json`` re-renders a saved run
without exporting again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- reference-table -->", "<!-- /reference-table -->"
FORMATS = ("onnx", "openvino", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also keep the raw figures")
    parser.add_argument("--readme", type=Path, default=None,
                        help="write the table between the reference-table markers")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="render a saved export_matrix/reference_table JSON instead")
    args, passthrough = parser.parse_known_args()
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        result = run_matrix(passthrough)
        result["machine"] = machine()
        result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = render(result)
    print(table)
    if args.readme:
        write_between_markers(args.readme, table)
        print(f"\nwrote the table into {args.readme}")
    return 0


def run_matrix(passthrough: list[str]) -> dict:
    """export_matrix.py --model reference in a child process; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="edgekit-reftable-") as tmp:
        out = Path(tmp) / "matrix.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "export_matrix.py"),
                   "--model", "reference", "--json", str(out), *passthrough]
        print("running:", " ".join(command), flush=True)
        done = subprocess.run(command, check=False)
        if done.returncode != 0 or not out.is_file():
            raise SystemExit(f"export_matrix.py failed (exit {done.returncode}); see above.")
        return json.loads(out.read_text())


def machine() -> str:
    """CPU model, core count and OS, read from this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render(result: dict) -> str:
    """The Markdown block: one line of context, then format x precision rows."""
    rows = {(r["format"], r["precision"]): r for r in result["artifacts"]}
    memory = result.get("peak_memory") or {}
    load = result.get("load_average") or {}
    when = result.get("date", "on an unrecorded date")
    where = result.get("machine", "an unrecorded machine")
    lines = [
        f"Measured {when} on {where}, {result.get('threads')} inference threads, by "
        "`python benchmarks/reference_table.py`"
        f" (`edgekit export reference`, {result.get('val_images')} validation and "
        f"{result.get('calib_images')} calibration scenes). Whole 3x3 export, accuracy gate "
        f"included: **{result.get('export_wall_s')} s** (time budget "
        f"{result.get('time_budget_s')} s), peak memory "
        f"**{_fmt(memory.get('tree_sampled_gb'), '.2f', ' GB')}** (process tree)."
        + (f" Load average before/after the export: "
           f"{'/'.join(f'{v:.1f}' for v in load['before_export'])} -> "
           f"{'/'.join(f'{v:.1f}' for v in load['after_export'])}."
           if load.get("before_export") and load.get("after_export") else ""),
        "",
        "| format | precision | mAP@0.5:0.95 | Δ vs fp32 | latency p50 ms | speed-up vs fp32 "
        "| size MB | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt in FORMATS:
        base = rows.get((fmt, "fp32"))
        for precision in PRECISIONS:
            r = rows.get((fmt, precision))
            if r is None:
                lines.append(f"| {fmt} | {precision} | not produced | | | | | |")
                continue
            ms = r.get("latency_ms_median")
            speedup = (base["latency_ms_median"] / ms
                       if base and ms and base.get("latency_ms_median") else None)
            gate = (r.get("gate") or "-") + (f" ({r['fallback']})" if r.get("fallback") else "")
            lines.append(
                f"| {fmt} | {precision} | {_fmt(r.get('map50_95'), '.2f')} | "
                f"{_fmt(r.get('delta'), '+.2f')} | {_fmt(ms, '.2f')} | "
                f"{_fmt(speedup, '.2f', 'x')} | {_fmt(r.get('size_mb'), '.2f')} | {gate} |")
    if result.get("incomplete"):
        lines.append(f"\nIncomplete: {result['incomplete']}")
    return "\n".join(lines)


def write_between_markers(path: Path, block: str) -> None:
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers: add them where the "
                         "table belongs.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{block}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
