"""A regular install works: the wheel built from this tree, installed into a fresh venv with
its extras, exports and runs the sample detector (editable installs hide missing files).

Slow (a venv, torch and the wheel's dependencies from pip's cache): marked ``slow``, and CI
runs it with everything else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # first and pinned: unpinned, pip pulls several GB of CUDA wheels


def _run(args: list[str | Path], *, cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_installs_and_runs_export_and_predict(tmp_path: Path) -> None:
    started = time.monotonic()
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "out", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source],
         cwd=tmp_path)
    (wheel,) = wheels.glob("edgekit-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _run([*pip, TORCH], cwd=tmp_path)
    _run([*pip, "-c", ROOT / "constraints.txt", f"{wheel}[export,onnxruntime]"], cwd=tmp_path)
    edgekit = venv / "bin" / "edgekit"
    work = tmp_path / "work"  # outside the source tree: nothing may import from it
    work.mkdir()
    _run([edgekit, "export", "sample", "-o", "bundle", "--to", "onnx", "--precision", "fp32"],
         cwd=work)
    _run([edgekit, "sample-data", "scenes", "--count", "2", "--seed", "5"], cwd=work)
    for model in ("bundle", "sample"):
        _run([edgekit, "predict", model, "scenes/images", "-o", f"pred-{model}"], cwd=work)
        lines = (work / f"pred-{model}" / "detections.jsonl").read_text().splitlines()
        assert len(lines) == 2 and all("detections" in json.loads(x) for x in lines)
    where = _run([venv / "bin" / "python", "-c", "import edgekit.export.models, edgekit; "
                  "print(edgekit.__file__)"], cwd=work)
    assert str(venv) in where  # the installed wheel ran, not this checkout
    print(f"wheel test: {time.monotonic() - started:.0f} s")  # shown with -s / --durations
