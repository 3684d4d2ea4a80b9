"""One table across boards: device x artifact -> latency, fps, mAP, utilisation, heat, choice.

Rows come from results of any origin (this machine, ``bench --on``, the history), as the
dictionaries ``BenchResult.to_dict`` writes. A row's device is the inventory name a remote
run recorded, else "this host". ``would_run`` marks the artifact edgekit would choose on that
board (edgekit.choice: the fastest measured that passed its gate on a runtime the device has),
so the table shows what the board would run beside what it could.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("device", "board", "artifact", "executed_on", "threads", "p50_ms", "p99_ms", "fps",
           "load_ms", "first_ms", "mAP50-95", "mAP_from", "golden", "GFLOP/s", "util_%",
           "max_temp_C", "throttled", "would_run")


def device_of(result: dict[str, Any]) -> str:
    fp = result.get("fingerprint") or {}
    name = fp.get("device") or "this host"
    return f"{name} (emulated)" if fp.get("emulated") else name


def _map(result: dict[str, Any]) -> tuple[float | None, str]:
    acc = result.get("accuracy") or {}
    value = acc.get("map50_95")
    failed = f"; --val on device failed: {acc['on_device_error']}" \
        if acc.get("on_device_error") else ""
    if value is None:
        return None, failed.lstrip("; ") or "-"
    source = acc.get("source") or "this host"
    if source == "on device":
        source = f"on device, {acc.get('images', '?')} images"
    return round(100 * value, 2), source + failed


def _golden(result: dict[str, Any]) -> str:
    golden = result.get("golden")
    if not golden:
        return "-"
    if golden.get("ok"):
        return f"ok, max abs diff {golden.get('max_abs_diff', 0):.2g}"  # no '|': Markdown
    return f"FAIL: {golden.get('reason')}"


def _heat(result: dict[str, Any]) -> tuple[float | str | None, str]:
    thermal = result.get("thermal")
    if not thermal:
        return None, "-"
    temps = thermal.get("temperature_c")
    hottest = max(z["max"] for z in temps.values()) if isinstance(temps, dict) and temps \
        else temps
    throttling = thermal.get("throttling")
    if isinstance(throttling, dict):
        flag = throttling.get("during_run", throttling.get("below_rated"))
        throttled = "yes" if flag else "no"
    else:
        throttled = throttling or "-"
    return hottest, throttled


def row(result: dict[str, Any]) -> dict[str, Any]:
    """One table row from one result dictionary."""
    fp = result.get("fingerprint") or {}
    compute = result.get("compute") or {}
    latency = result["latency_ms"]
    mean = latency.get("mean") or 0.0
    map_value, map_source = _map(result)
    hottest, throttled = _heat(result)
    util = compute.get("utilisation")
    would = fp.get("would_run")
    return {
        "device": device_of(result), "board": fp.get("board"), "artifact": result["artifact"],
        "executed_on": result.get("executed_on"), "threads": result.get("threads"),
        "p50_ms": round(latency["p50"], 3), "p99_ms": round(latency["p99"], 3),
        "fps": round(1000.0 / mean, 1) if mean else None,
        "load_ms": round(result.get("load_ms", 0.0), 1),
        "first_ms": round(result.get("first_inference_ms", 0.0), 2),
        "mAP50-95": map_value, "mAP_from": map_source, "golden": _golden(result),
        "GFLOP/s": round(compute["gflops"], 2) if compute.get("gflops") else None,
        "util_%": round(100 * util, 1) if util is not None else None,
        "max_temp_C": round(hottest, 1) if isinstance(hottest, float) else hottest,
        "throttled": throttled,
        "would_run": "yes" if would == result["artifact"] else ("-" if would is None else ""),
    }


def rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by device, then by latency."""
    out = [row(r) for r in results]
    return sorted(out, key=lambda r: (r["device"], r["p50_ms"]))


def markdown(table_rows: Sequence[dict[str, Any]], *, title: str = "",
             notes: Sequence[str] = ()) -> str:
    """A GitHub Markdown table (with a title line and notes below it)."""
    head = list(COLUMNS)
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table_rows:
        lines.append("| " + " | ".join("-" if r[k] is None else str(r[k]).replace("|", "\\|")
                                       for k in head) + " |")
    lines += ["", *(f"- {n}" for n in notes)] if notes else []
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, table_rows: Sequence[dict[str, Any]], *,
                   title: str = "", notes: Sequence[str] = ()) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown(table_rows, title=title, notes=notes))
    return target


def write_plot(path: str | Path, table_rows: Sequence[dict[str, Any]], *,
               title: str = "") -> Path:
    """Latency (p50, ms) against mAP (points), one series (colour and marker) per device.

    Rows without a measured mAP are left out of the scatter and named in the legend title;
    with none at all the plot shows p50 bars per device and artifact instead.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a board or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    with_map = [r for r in table_rows if r["mAP50-95"] is not None]
    devices = sorted({r["device"] for r in table_rows})
    if with_map:
        markers = "osD^vP*X"
        for i, device in enumerate(devices):
            series = [r for r in with_map if r["device"] == device]
            if not series:
                continue
            board = series[0]["board"]
            ax.scatter([r["p50_ms"] for r in series], [r["mAP50-95"] for r in series],
                       s=55, marker=markers[i % len(markers)], label=f"{device} ({board})")
            for r in series:
                ax.annotate(r["artifact"], (r["p50_ms"], r["mAP50-95"]), fontsize=7,
                            textcoords="offset points", xytext=(5, 3 + 8 * (i % 3)))
        values = [r["mAP50-95"] for r in with_map]
        # At least 5 points of mAP shown: a 0.5-point gap must not fill the whole axis.
        middle, half = (max(values) + min(values)) / 2, max(2.5, (max(values) - min(values)))
        ax.set_ylim(max(0.0, middle - half), min(100.0, middle + half))
        ax.set_xlim(0, max(r["p50_ms"] for r in with_map) * 1.25)
        ax.set_xlabel("p50 inference latency (ms)")
        ax.set_ylabel("mAP@0.5:0.95 (points)")
        missing = len(table_rows) - len(with_map)
        ax.legend(fontsize=8, title=f"{missing} rows without mAP" if missing else None)
    else:
        labels = [f"{r['device']}: {r['artifact']}" for r in table_rows]
        ax.barh(labels, [r["p50_ms"] for r in table_rows])
        ax.set_xlabel("p50 inference latency (ms); no mAP measured (--val)")
        ax.invert_yaxis()
    ax.set_title(title or "edgekit bench across boards", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target


def latest(history: Any, *, model: str | None = None, board: str | None = None,
           limit: int = 500) -> list[dict[str, Any]]:
    """The newest stored result per (device, board, artifact) from a History."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for summary in history.query(model=model, board=board, limit=limit):
        result = history.get(summary["id"])
        key = (device_of(result), summary["board"], result["artifact"])
        if key not in seen:
            seen.add(key)
            out.append(result)
    return out
