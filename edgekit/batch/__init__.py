"""Batch inference over video archives on Ray (the optional ``edgekit[scale]`` extra).

``import edgekit.batch`` loads neither ray nor pyarrow; :func:`run` connects to Ray (starting
it here when no address is given), and ``edgekit batch`` is a thin layer over it.

Example:
    from edgekit.batch import run

    summary = run("sample", ["archive/"], "out/batch", every=5)
    print(summary["totals"]["frames"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .settings import DEFAULT_SEGMENT_SECONDS, BatchSettings, BatchSettingsError

__all__ = ["DEFAULT_SEGMENT_SECONDS", "BatchSettings", "BatchSettingsError", "evaluate_sharded",
           "read_detections", "run"]


def run(model: str | Path, inputs: list[str | Path] | str | Path, out: str | Path, *,
        progress: Any = None, file_options: Any = None, **settings: Any) -> dict[str, Any]:
    """Runs MODEL over videos on Ray; returns the summary (also in ``out/summary.json``).

    Args:
        model: ``sample``, a bundle directory, or a .onnx/.xml/.tflite detector.
        inputs: Video files, folders, globs, list files (.txt) or URIs; one or a list.
        out: Output folder; re-running into the same folder resumes.
        progress: Called with a ``driver.Progress`` after each segment.
        file_options: ``edgekit.modelfile.FileOptions`` for a plain model file.
        **settings: Keyword-only fields of :class:`BatchSettings` (``every``, ``fps``,
            ``sink``, ``track``, ``analytics``, ``address``, ``workers``, ``board``, ...).
    """
    from .driver import run as _run

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    return _run(model, inputs, out, settings=BatchSettings(**settings), progress=progress,
                file_options=file_options)


def evaluate_sharded(model: str | Path, data: str | Path, **kwargs: Any) -> Any:
    """mAP of MODEL on a labelled dataset, its images sharded over Ray workers.

    The numbers equal a single-process ``edgekit.evaluate``: same artifact, same images, one
    COCOeval over all of them. See :func:`edgekit.batch.shard_eval.evaluate_sharded`.
    """
    from .shard_eval import evaluate_sharded as _evaluate

    return _evaluate(model, data, **kwargs)


def read_detections(out: str | Path) -> Any:
    """The per-frame rows of a finished run as one ``pyarrow.Table`` (with a ``video`` column)."""
    from .readback import read_detections as _read

    return _read(out)
