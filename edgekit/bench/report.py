"""Result writers: JSON, CSV, Markdown and a PNG plot (latency vs accuracy per artifact)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .result import BenchResult


def _target(path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def write_json(path: str | Path, results: Sequence[BenchResult]) -> Path:
    """One result as an object, several as a list."""
    data: Any = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
    target = _target(path)
    target.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return target


def write_csv(path: str | Path, results: Sequence[BenchResult]) -> Path:
    rows = [r.row() for r in results]
    target = _target(path)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def markdown(results: Sequence[BenchResult]) -> str:
    """A GitHub-flavoured Markdown table of the summary rows."""
    rows = [r.row() for r in results]
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row.values()) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, results: Sequence[BenchResult], *, title: str = "") -> Path:
    target = _target(path)
    fp = results[0].fingerprint
    header = (f"# {title}\n\n" if title else "") + (
        f"Board profile `{fp['board']}` (this machine: {fp.get('detected_board')}), "
        f"CPU {fp['cpu_model']}, {results[0].runs} runs each; latency is the model's "
        "inference, e2e adds pre/post-processing.\n\n")
    if fp.get("emulated"):
        header += (f"**Measured under emulation ({fp['emulated']})**: these latencies are not "
                   f"a real `{fp['board']}`'s.\n\n")
    target.write_text(header + markdown(results))
    return target


# The accuracy axis spans at least this many mAP points: a 0.6-point gap drawn across the
# whole height (the old auto-scaled axis ran 64.8 to 65.4) reads as a large difference.
MIN_MAP_SPAN = 10.0


def plot_title(results: Sequence[BenchResult]) -> str:
    """Model, board profile and CPU: what a figure pasted into a report must say."""
    fp = results[0].fingerprint
    model = Path(str(results[0].model)).name or str(results[0].model)
    return (f"{model} on board '{fp.get('board', '?')}' ({fp.get('cpu_model') or 'unknown CPU'}"
            f", {results[0].threads or '?'} threads)")


def spread(values: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Positions near ``values`` (any order), at least ``gap`` apart, inside [low, high].

    Label placement for the plot: labels stay in their points' order and move as little as
    the gap needs, so none overprints another.
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [0.0] * len(values)
    last = low - gap
    for i in order:
        last = max(values[i], last + gap)
        placed[i] = last
    overflow = last - high
    if overflow > 0:  # the top label left the axis: shift the stack down, keeping the gaps
        top = high
        for i in reversed(order):
            placed[i] = min(placed[i] - overflow, top)
            top = placed[i] - gap
    return placed


def plot_figure(results: Sequence[BenchResult], *, title: str = "") -> Any:
    """The latency-vs-mAP figure (matplotlib), or latency bars when no accuracy was measured.

    Honest axes: latency from 0 (so ratios read true), mAP in points over at least
    ``MIN_MAP_SPAN`` points. Labels sit in a column beside the points, spaced so none
    overlaps, with a thin line to their point.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a board or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    acc = [(r.accuracy or {}).get("map50_95") for r in results]
    labels = [f"{r.artifact} ({r.executed_on}): {r.latency_ms['p50']:.2f} ms" for r in results]
    p50 = [r.latency_ms["p50"] for r in results]
    if all(a is not None for a in acc):
        pts = [100 * a for a in acc]
        mid, half = (max(pts) + min(pts)) / 2, max(MIN_MAP_SPAN, (max(pts) - min(pts)) * 1.3) / 2
        low, high = max(0.0, mid - half), min(100.0, mid + half)
        if high - low < MIN_MAP_SPAN:  # clipped at 0 or 100: keep the span
            low, high = (0.0, MIN_MAP_SPAN) if low == 0 else (100 - MIN_MAP_SPAN, 100.0)
        right = max(p50) * 1.1
        ax.set_xlim(0, right)
        ax.set_ylim(low, high)
        ax.scatter(p50, pts, s=50, zorder=3)
        ys = spread(pts, (high - low) * 0.07, low + (high - low) * 0.03,
                    high - (high - low) * 0.03)
        for x, y, ty, label, a in zip(p50, pts, ys, labels, pts, strict=True):
            ax.annotate(f"{label}, mAP {a:.2f}", xy=(x, y),
                        xytext=(1.02, (ty - low) / (high - low)),
                        textcoords="axes fraction", va="center", fontsize=8,
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.7})
        ax.set_xlabel("p50 inference latency (ms), axis from 0")
        ax.set_ylabel(f"mAP@0.5:0.95 (points, {high - low:.0f}-point axis)")
    else:
        ax.barh(labels, p50)
        ax.set_xlim(0, max(p50) * 1.1)
        ax.set_xlabel("p50 inference latency (ms); no accuracy measured (bench --val)")
        ax.invert_yaxis()
    ax.set_title(title or plot_title(results), fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_plot(path: str | Path, results: Sequence[BenchResult], *, title: str = "") -> Path:
    """Writes ``plot_figure`` as a PNG (bbox fitted, so the label column is kept whole)."""
    import matplotlib.pyplot as plt

    fig = plot_figure(results, title=title)
    target = _target(path)
    fig.savefig(target, bbox_inches="tight")
    plt.close(fig)
    return target
