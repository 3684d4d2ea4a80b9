import pytest

from edgekit.backends import BACKENDS, backend_for
from edgekit.bundle import Format
from edgekit.errors import UnknownNameError
from edgekit.registry import Registry


def test_unknown_name_lists_the_valid_ones() -> None:
    registry = Registry("board", {"rpi5": "x:Y", "orin-nano": "x:Z"})
    with pytest.raises(UnknownNameError, match="Valid boards: orin-nano, rpi5"):
        registry.load("rpi9")


def test_entries_load_lazily_and_resolve() -> None:
    registry = Registry("thing", {"join": "os.path:join"})
    import os.path

    assert registry.load("join") is os.path.join
    with pytest.raises(ValueError):
        registry.register("bad", "no-colon")


def test_backend_for_onnx_is_onnxruntime() -> None:
    assert "onnxruntime" in BACKENDS
    assert backend_for(Format.ONNX).name == "onnxruntime"
