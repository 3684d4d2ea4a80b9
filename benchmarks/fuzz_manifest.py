"""10,000 mutated manifests (and 1,000 mutated model files) through Detector.open + one frame.

Prints how each was answered: a clean refusal (an EdgekitError), accepted (opened and ran),
or anything else (a crash, a traceback: the count to keep at 0), and the slowest case (a hang
would show here). The CI test (tests/core/test_manifest_fuzz.py) runs the same mutations on a
budget of seconds.

    python benchmarks/fuzz_manifest.py [--manifests 10000] [--models 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fuzzing import make_base, manifest_mutations, model_mutations, try_manifest, try_model  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402


def run(name: str, count: int, strategy, attempt, seed: int) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    others: collections.Counter[str] = collections.Counter()
    slowest = [0.0]

    # No shrinking and no database: every generated case is counted exactly once.
    @hypothesis_seed(seed)
    @settings(max_examples=count, deadline=None, database=None, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(raw=strategy)
    def one(raw: bytes) -> None:
        t0 = time.perf_counter()
        outcome = attempt(raw)
        slowest[0] = max(slowest[0], time.perf_counter() - t0)
        kind = outcome.split(":", 1)[0]
        outcomes[kind] += 1
        if kind == "other":
            others[outcome] += 1

    t0 = time.perf_counter()
    one()
    total = sum(outcomes.values())
    print(f"{name}: {total} mutations in {time.perf_counter() - t0:.0f} s: "
          f"{outcomes['refused']} clean refusals, {outcomes['accepted']} accepted, "
          f"{outcomes['other']} anything else; slowest case {slowest[0] * 1e3:.0f} ms")
    for text, n in others.most_common(10):
        print(f"  {n} x {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        bundle, manifest = make_base(Path(tmp))
        model = (bundle / "model.onnx").read_bytes()
        run("manifests", args.manifests, manifest_mutations(manifest),
            lambda raw: try_manifest(bundle, raw), args.seed)
        run("model files", args.models, model_mutations(model),
            lambda raw: try_model(Path(tmp), raw), args.seed)


if __name__ == "__main__":
    main()
