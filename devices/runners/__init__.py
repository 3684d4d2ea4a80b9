"""One runner per board family, chosen through a registry by the board profile's family.

Example:
    runner = load_runner("sample", board="rpi5")
    detections = runner(image)
    print(runner.executed_on)   # what REALLY ran, read back from the runtime
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgekit.bundle import Bundle, Format, Precision
from edgekit.registry import Registry

from ..detect import Facts, detect_board, gather_facts
from ..profiles import BoardProfile, load_profile
from .base import Plan, Request, Runner, measured_choice

# family -> "module:plan" (a function (bundle, board, request, facts) -> Plan)
RUNNERS: Registry[Callable[..., Plan]] = Registry("runner family", {
    "jetson": "edgekit.devices.runners.jetson:plan",
    "rpi": "edgekit.devices.runners.rpi:plan",
    "intel-npu": "edgekit.devices.runners.intel_npu:plan",
    "cpu": "edgekit.devices.runners.cpu:plan",
})


def resolve_board(board: BoardProfile | str | None, facts: Facts) -> BoardProfile:
    """A profile given, named, or detected on this machine."""
    if isinstance(board, BoardProfile):
        return board
    return load_profile(board) if board else detect_board(facts).profile


def open_model(model: str | Path | Bundle, *, file_options=None) -> Bundle:
    """``sample``, a bundle dir, or a plain .onnx/.xml/.tflite detector file, as a Bundle
    (plain files through the one loader, ``edgekit.modelfile``)."""
    from edgekit.detector import open_bundle

    if isinstance(model, Bundle):
        return model
    return open_bundle(model, file_options=file_options)


def make_plan(bundle: Bundle, board: BoardProfile, request: Request, facts: Facts) -> Plan:
    """Asks the board family's runner what to run (loads nothing).

    Unless the request names one artifact, the artifact is the fastest measured one that
    passed its gate (``edgekit.choice``); the family then decides backend and options for it.
    """
    choice = None
    if request.format is None or request.precision is None:
        choice = measured_choice(bundle, board, request, facts)
        if choice is not None:
            chosen = choice.chosen.artifact
            request = replace(request, format=chosen.format, precision=chosen.precision)
    plan = RUNNERS.load(board.family)(bundle, board, request, facts)
    return replace(plan, choice=choice)


def load_runner(model: str | Path | Bundle, *, board: BoardProfile | str | None = None,
                format: str | Format | None = None, precision: str | Precision | None = None,
                threads: int | None = None, fallback: bool = False,
                facts: Facts | None = None, file_options=None) -> Runner:
    """Opens the best artifact of ``model`` for a board, on the runtime its runner picks.

    Args:
        model: ``sample``, a bundle directory, a Bundle, or a .onnx/.xml/.tflite detector.
        board: A profile or its name; None detects this machine's.
        format: Only artifacts of this format.
        precision: Only artifacts of this precision.
        threads: Inference threads (default: the board's, capped at this machine's cores).
        fallback: Allow a missing accelerator (NPU) to fall back, with a logged warning.
        facts: This machine's facts (gathered when None).
        file_options: What the user said about a plain model file (``--head``, ``--shape``,
            preprocessing flags); see ``edgekit.modelfile.FileOptions``.

    Returns:
        A Runner: call it on images; ``executed_on`` is what really ran.
    """
    from edgekit.detector import Detector

    facts = facts or gather_facts()
    profile = resolve_board(board, facts)
    bundle = open_model(model, file_options=file_options)
    request = Request(format=Format.parse(format) if format else None,
                      precision=Precision.parse(precision) if precision else None,
                      threads=threads, fallback=fallback)
    chosen = make_plan(bundle, profile, request, facts)
    detector = Detector(bundle, chosen.artifact, options=chosen.options, backend=chosen.backend)
    return Runner(detector, profile, chosen)


__all__ = ["RUNNERS", "Plan", "Request", "Runner", "load_runner",
           "make_plan", "open_model", "resolve_board"]
