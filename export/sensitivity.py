"""Which layers lose the most to INT8: ranked once, cheaply, with bounded memory.

Each weighted layer (Conv, Gemm, MatMul) of the INT8 QDQ model is scored by the relative
noise its quantized inputs bring to its output: the noise-to-signal ratio of its input
activation (measured: the tensor before vs after its quantize/dequantize pair, on a few
calibration images) plus that of its weights (computed: per-output-channel symmetric int8,
as both quantizers do). For a product, relative errors of the factors add to first order, so
the sum estimates the layer's own output error; keeping the highest-scoring layers in float
removes the most noise per layer kept.

Memory is bounded by one image's activations: the augmented model runs one image at a time
and only per-tensor sums are kept. onnxruntime's ``qdq_loss_debug``, used before, collected
every intermediate tensor of 32 frames at once: 23 GB at 640 on a 22 M-parameter YOLOv8
(issue 16), and the kernel killed the export.

The ranking names ONNX nodes; :func:`openvino_names` maps them to the IR's ops (the ONNX
frontend keeps the node name, adding ``/WithoutBiases`` to a conv with a bias), so one
ranking serves every format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Precision

from .jobs import ExportJob, Fallback, GateFailure

__all__ = ["RANK_IMAGES", "SearchState", "float_counts", "mixed_precision", "openvino_names",
           "rank_layers", "weight_noise"]

# Images the ranking runs on: the order of layers settles within a few (measured on the
# sample: the top-10 of 4 images and of 32 images shared 9 layers).
RANK_IMAGES = 8
_WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def rank_layers(fp32: Path, int8: Path, calibration: Sequence[np.ndarray], *,
                input_name: str, workdir: Path,
                images: int = RANK_IMAGES) -> list[tuple[str, float]]:
    """The weighted nodes of ``fp32``, noisiest first, with their noise-to-signal ratio.

    Args:
        fp32: The float ONNX model (its node names are what the ranking returns).
        int8: The QDQ model quantized from it.
        calibration: Preprocessed input tensors; the first ``images`` are used.
        input_name: The model's input.
        workdir: Scratch directory for the augmented model.
        images: How many tensors to run.

    Returns:
        ``(node name, relative output noise)`` for every weighted node the QDQ model
        quantizes, highest noise first.
    """
    import onnx

    weights = _float_weights(fp32)
    model = onnx.load(str(int8))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    # Weighted node in the QDQ model -> (pre-QDQ activation, post-QDQ activation, weight).
    layers: dict[str, tuple[str, str, np.ndarray | None]] = {}
    for node in graph.node:
        if node.op_type not in _WEIGHT_OPS or len(node.input) < 2:
            continue
        post = node.input[0]
        dq = producer.get(post)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
            else None
        if q is None or q.op_type != "QuantizeLinear" or node.name not in weights:
            continue  # its input is float (or it is not in the float model): not ranked
        layers[node.name] = (q.input[0], post, weights[node.name])
    names = sorted({t for pre, post, _ in layers.values() for t in (pre, post)})
    augmented = workdir / "int8_ranking.onnx"
    existing = {o.name for o in graph.output}
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in existing)
    onnx.save(model, str(augmented))
    del model, graph
    signal, noise = _activation_noise(augmented, calibration[:images], input_name, names,
                                      layers)
    scores = {}
    for name, (_pre, _post, weight) in layers.items():
        activation = noise[name] / max(signal[name], 1e-30)
        scores[name] = activation + (weight_noise(weight) if weight is not None else 0.0)
    return sorted(((n, float(s)) for n, s in scores.items()), key=lambda item: -item[1])


def _activation_noise(augmented: Path, tensors: Iterable[np.ndarray], input_name: str,
                      names: list[str], layers: dict[str, tuple[str, str, object]]
                      ) -> tuple[dict[str, float], dict[str, float]]:
    """Per layer: sum of squares of its input activation, and of that activation's QDQ noise,
    accumulated one image at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # No fusion: the QDQ pairs must stay as written so their outputs are the measured values.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
    signal = dict.fromkeys(layers, 0.0)
    noise = dict.fromkeys(layers, 0.0)
    for tensor in tensors:
        values = dict(zip(names, session.run(names, {input_name: tensor}), strict=True))
        for layer, (pre, post, _) in layers.items():
            a = values[pre].astype(np.float64, copy=False)
            signal[layer] += float(np.square(a).sum())
            noise[layer] += float(np.square(values[post] - a).sum())
        del values
    return signal, noise


def _float_weights(fp32: Path) -> dict[str, np.ndarray | None]:
    """Each weighted node of the float model and its float weight (None: not a constant)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(fp32)).graph
    initializers = {t.name: t for t in graph.initializer}
    return {node.name: (numpy_helper.to_array(initializers[node.input[1]])
                        if node.input[1] in initializers else None)
            for node in graph.node if node.op_type in _WEIGHT_OPS and len(node.input) > 1}


def weight_noise(weight: np.ndarray) -> float:
    """Noise-to-signal ratio of symmetric per-output-channel int8 weights."""
    w = np.asarray(weight, np.float64)
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(flat / scale), -127, 127) * scale
    return float(np.square(q - flat).sum() / max(np.square(flat).sum(), 1e-30))


def openvino_names(onnx_nodes: Iterable[str], model: object) -> list[str]:
    """The OpenVINO ops (friendly names) that ONNX nodes became: the same name, or the name
    followed by ``/...`` (``/WithoutBiases`` for a conv with a bias)."""
    wanted = set(onnx_nodes)
    found = []
    for op in model.get_ordered_ops():  # type: ignore[attr-defined]
        name = op.get_friendly_name()
        if name in wanted or name.rsplit("/", 1)[0] in wanted:
            found.append(name)
    return found


# --- the mixed-precision search ---------------------------------------------------------

# The mixed-precision candidates: keep in float the fewest top-ranked layers whose summed
# noise (sensitivity.py) reaches each share of the model's total, fewest first, so the first
# candidate that passes is the fastest of them. Never more than MAX_FLOAT_SHARE of the layers:
# past that, INT8 has no speed left to keep. This replaces NNCF's accuracy control, which
# re-ranked layers by validation mAP at every step: about 3.5 minutes per step and more than
# 18 minutes unfinished on a 22 M-parameter YOLOv8 at 640 (issue 16).
NOISE_SHARES = (0.25, 0.5, 0.75)
MAX_FLOAT_SHARE = 0.5
# Calibration images for the QDQ model a ranking is read from when no ONNX INT8 file exists
# yet (an OpenVINO-only export): its scales only need to be close, not final.
RANKING_CALIBRATION = 64


@dataclass(kw_only=True)
class SearchState:
    """The export's layer ranking: measured once, then used by every format's candidates.

    Attributes:
        ranking: ``(ONNX node name, relative output noise)``, noisiest first.
        seconds: What measuring it took.
        say: Progress sink.
    """

    ranking: list[tuple[str, float]] | None = None
    seconds: float = 0.0
    say: Callable[[str], None] = field(default=lambda _line: None)

    def rank(self, job: ExportJob, int8_onnx: Path | None) -> list[tuple[str, float]]:
        """The ranking, measured on ``int8_onnx`` (or on a QDQ model made for it) the first
        time it is asked for."""
        if self.ranking is not None:
            return self.ranking
        import time

        from .quantize_onnx import export_onnx_artifact

        started = time.perf_counter()
        workdir = job.workdir / "ranking"
        workdir.mkdir(parents=True, exist_ok=True)
        if int8_onnx is None:
            qdq = replace(job, precision=Precision.INT8, workdir=workdir,
                          calibration=(job.calibration or [])[:RANKING_CALIBRATION])
            int8_onnx = export_onnx_artifact(qdq).path
        self.ranking = rank_layers(job.onnx_fp32, int8_onnx, job.calibration or [],
                                   input_name=job.spec.name, workdir=workdir)
        self.seconds = time.perf_counter() - started
        top = ", ".join(f"{name} {score:.1e}" for name, score in self.ranking[:3])
        self.say(f"ranked {len(self.ranking)} quantized layers by their INT8 noise on "
                 f"{RANK_IMAGES} calibration images in {self.seconds:.1f} s (noisiest: {top})")
        return self.ranking


def float_counts(ranking: list[tuple[str, float]], *, shares: tuple[float, ...] = NOISE_SHARES,
                 cap: float = MAX_FLOAT_SHARE) -> list[int]:
    """How many top-ranked layers each candidate keeps in float (distinct, ascending)."""
    total = sum(score for _, score in ranking)
    most = max(1, math.floor(cap * len(ranking)))
    counts: list[int] = []
    for share in shares:
        covered, count = 0.0, 0
        for _, score in ranking:
            if covered >= share * total:
                break
            covered += score
            count += 1
        count = min(max(1, count), most)
        if count not in counts:
            counts.append(count)
    return sorted(counts)


def mixed_precision(failure: GateFailure, int8_onnx: Path | None) -> Iterator[Fallback]:
    """``mixed-precision (k of n layers float)``: the k noisiest layers of the export's
    ranking kept in float, for each k of :func:`float_counts`, fewest first.

    Args:
        failure: The failing artifact; ``failure.search`` holds (or measures) the ranking.
        int8_onnx: A QDQ model to rank from (the failing ONNX INT8 file), or None to make one.
    """
    search = failure.search if failure.search is not None else SearchState()
    try:
        ranking = search.rank(failure.job, int8_onnx)
    except Exception as exc:  # the ranking is a means: without it, the other fallbacks
        search.say(f"cannot rank the layers ({type(exc).__name__}: {exc}); "
                   "no mixed-precision candidates")
        return
    names = [name for name, _ in ranking]
    for count in float_counts(ranking) if ranking else ():
        job = replace(failure.job, workdir=failure.job.workdir / f"mixed-{count}")
        yield (f"mixed-precision ({count} of {len(names)} layers float)",
               lambda j=job, c=count: _with_float_layers(failure, j, names[:c]))


def _with_float_layers(failure: GateFailure, job: ExportJob, layers: list[str]) -> Any:
    exported = failure.export(job, exclude=layers)
    return replace(exported, details={**exported.details, "fallback_excluded": layers})
