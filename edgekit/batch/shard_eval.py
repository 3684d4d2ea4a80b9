"""`edgekit eval --address`: a labelled dataset's images sharded over the batch workers.

Workers only run the detector on their share of the images and send back the detections
(a few kilobytes per image); the driver scores all of them in one COCOeval, so the numbers
are those of a single-process ``edgekit.evaluate`` on the same artifact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..eval import EvalResult, evaluate_detections


def evaluate_sharded(model: str | Path, data: str | Path, *, address: str | None = None,
                     workers: int | None = None, cpus_per_worker: float = 1.0,
                     board: str | None = None, format: str | None = None,
                     precision: str | None = None, conf: float | None = 0.001,
                     iou: float | None = 0.6, shard_size: int = 64, file_options: Any = None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> tuple[EvalResult, dict[str, Any]]:
    """Evaluates MODEL on DATA with its images spread over Ray workers.

    Args:
        model: ``sample``, a bundle directory, or a detector file.
        data: A COCO or YOLO dataset readable at the same path on every node.
        address: None starts Ray here; otherwise the cluster to join.
        workers: Actors to start (default: the cluster's CPUs / ``cpus_per_worker``).
        cpus_per_worker: CPUs (and inference threads) per actor.
        board: Board profile whose artifact choice the workers make (default: this host).
        format: Only artifacts of this format.
        precision: Only artifacts of this precision.
        conf: Score threshold (COCO mAP wants a low one, as `edgekit eval`).
        iou: NMS IoU threshold.
        shard_size: Images per call to a worker.
        file_options: What the user said about a plain model file (head, shape, labels).
        progress: Called as ``progress(done, total)`` after each shard.

    Returns:
        The accuracy and a description of the worker that ran (artifact, executed_on).
    """
    from ..data.dataset import check_labels, load_dataset
    from .bundle_ship import pack, passing_artifacts
    from .cluster import cluster_cpus, ray_session
    from .driver import _bundle_and_board, _check_same_artifact, _start_workers
    from .worker import WorkerSettings

    start = time.perf_counter()
    dataset = load_dataset(data)
    bundle, board_name = _bundle_and_board(model, board, file_options)
    check_labels(dataset.labels, bundle.manifest.labels)
    settings = WorkerSettings(board=board_name, format=format, precision=precision,
                              threads=max(1, int(cpus_per_worker)), conf=conf, iou=iou)
    ids = [sample.image_id for sample in dataset.items]
    shards = [ids[i:i + shard_size] for i in range(0, len(ids), shard_size)]
    uri = str(Path(data).resolve()) if Path(data).exists() else str(data)
    results: dict[int, Any] = {}
    with ray_session(address) as ray:
        count = workers or max(1, int(cluster_cpus(ray) // cpus_per_worker))
        actors, _bundle_ref = _start_workers(ray, pack(passing_artifacts(bundle)), settings,
                                             min(count, len(shards)), cpus_per_worker)
        described = ray.get([a.describe.remote() for a in actors])
        _check_same_artifact(described)
        pool = ray.util.ActorPool(actors)
        for part in pool.map_unordered(lambda a, shard: a.predict_images.remote(uri, shard),
                                       shards):
            results.update(part)
            if progress is not None:
                progress(len(results), len(ids))
    result = evaluate_detections(results, dataset)
    return replace(result, seconds=time.perf_counter() - start), described[0]
