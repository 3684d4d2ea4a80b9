"""Property: whatever a manifest or a model file holds, only edgekit's own errors escape.

A fixed, derandomized budget keeps this to a few seconds in CI; benchmarks/fuzz_manifest.py
runs 10,000 mutations and prints the counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from fuzzing import make_base, manifest_mutations, model_mutations, try_manifest, try_model  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

BUDGET = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    return make_base(tmp_path_factory.mktemp("fuzz"))


def test_the_unmutated_base_is_accepted(base) -> None:
    import json

    bundle, manifest = base
    assert try_manifest(bundle, json.dumps(manifest).encode()) == "accepted"


def test_mutated_manifests_give_only_edgekit_errors(base) -> None:
    bundle, manifest = base

    @BUDGET
    @given(raw=manifest_mutations(manifest))
    def check(raw: bytes) -> None:
        outcome = try_manifest(bundle, raw)
        assert outcome in ("refused", "accepted"), outcome

    check()


def test_mutated_model_files_give_only_edgekit_errors(base, tmp_path: Path) -> None:
    bundle, _ = base
    model = (bundle / "model.onnx").read_bytes()

    @settings(BUDGET, max_examples=40)
    @given(raw=model_mutations(model))
    def check(raw: bytes) -> None:
        outcome = try_model(tmp_path, raw)
        assert outcome in ("refused", "accepted"), outcome

    check()
