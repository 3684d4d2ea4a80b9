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
    target.write_text(header + markdown(results))
    return target


def write_plot(path: str | Path, results: Sequence[BenchResult], *, title: str = "") -> Path:
    """Latency (p50) vs accuracy per artifact; latency bars when no accuracy was measured."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a board or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    acc = [(r.accuracy or {}).get("map50_95") for r in results]
    labels = [f"{r.artifact}\n{r.executed_on}" for r in results]
    p50 = [r.latency_ms["p50"] for r in results]
    if all(a is not None for a in acc):
        ax.scatter(p50, acc, s=60)
        for x, y, label in zip(p50, acc, labels, strict=True):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel("p50 inference latency (ms)")
        ax.set_ylabel("mAP@0.5:0.95")
    else:
        ax.barh(labels, p50)
        ax.set_xlabel("p50 inference latency (ms), no accuracy measured (--val)")
        ax.invert_yaxis()
    ax.set_title(title or "edgekit bench", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = _target(path)
    fig.savefig(target)
    plt.close(fig)
    return target
