"""bench.png is a figure an engineer can paste into a report: latency vs mAP per artifact,
labels that never overprint, board and model in the title, axes that do not exaggerate."""

from __future__ import annotations

import itertools

from matplotlib.text import Text

from edgekit.bench.report import plot_figure, spread
from edgekit.bench.result import BenchResult

# The sample's 3x3 matrix: mAP within 1.3 points, latencies within 2x (README's table).
MATRIX = {"onnx/fp32": (65.39, 3.01), "onnx/fp16": (65.32, 3.16), "onnx/int8": (65.12, 5.95),
          "openvino/fp32": (65.39, 2.71), "openvino/fp16": (65.36, 2.74),
          "openvino/int8": (64.76, 2.53), "tflite/fp32": (65.39, 3.74),
          "tflite/fp16": (65.35, 3.78), "tflite/int8": (65.23, 4.40)}


def _result(artifact: str, map_pts: float, p50: float) -> BenchResult:
    return BenchResult(model="out/sample-bundle", artifact=artifact, format="onnx",
                       backend="b", precision="fp32", executed_on="CPU", threads=2, runs=200,
                       warmup=10, load_ms=1, first_inference_ms=1,
                       latency_ms={"p50": p50, "mean": p50}, fps=1000 / p50, peak_rss_mb=1,
                       inputs={}, timestamp="t", accuracy={"map50_95": map_pts / 100},
                       fingerprint={"board": "cpu-x86_64", "cpu_model": "Xeon"})


def test_plot_labels_do_not_overlap_and_axes_are_honest() -> None:
    fig = plot_figure([_result(k, *v) for k, v in MATRIX.items()])
    fig.canvas.draw()
    ax = fig.axes[0]
    # The label's own box (an Annotation's extent would include its leader line).
    boxes = [Text.get_window_extent(t) for t in ax.texts]
    assert len(boxes) == len(MATRIX)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    low, high = ax.get_ylim()
    assert high - low >= 10  # a 0.6-point gap is drawn as small as it is
    assert ax.get_xlim()[0] == 0
    title = ax.get_title(loc="left")
    assert "sample-bundle" in title and "cpu-x86_64" in title


def test_spread_keeps_order_and_gap_inside_the_range() -> None:
    placed = spread([5.0, 5.0, 5.1, 9.9], gap=1.0, low=0.0, high=10.0)
    assert sorted(placed) == [placed[0], placed[1], placed[2], placed[3]]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(sorted(placed)))
    assert 0.0 <= min(placed) and max(placed) <= 10.0
