"""`edgekit eval --address`: a labelled dataset's images sharded over the batch workers.

Workers only run the detector on their share of the images and send back the detections
(a few kilobytes per image); the driver scores all of them in one COCOeval, so the numbers
are those of a single-process ``edgekit.evaluate`` on the same artifact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..eval import EvalResult, evaluate_detections
from ..types import Detections

SHARD_SIZE = 64  # images per call to a worker: detections of a few kB each come back


def evaluate_sharded(model: str | Path, data: str | Path, *, address: str | None = None,
                     workers: int | None = None, cpus_per_worker: float = 1.0,
                     board: str | None = None, format: str | None = None,
                     precision: str | None = None, conf: float | None = 0.001,
                     iou: float | None = 0.6, shard_size: int | None = None,
                     file_options: Any = None,
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
        shard_size: Images per call to a worker (default: see :func:`predict_sharded`).
        file_options: What the user said about a plain model file (head, shape, labels).
        progress: Called as ``progress(done, total)`` after each shard.

    Returns:
        The accuracy and a description of the worker that ran (artifact, executed_on).
    """
    from ..data.dataset import check_labels, load_dataset
    from .driver import _bundle_and_board
    from .worker import WorkerSettings

    start = time.perf_counter()
    dataset = load_dataset(data)
    bundle, board_name = _bundle_and_board(model, board, file_options)
    check_labels(dataset.labels, bundle.manifest.labels)
    settings = WorkerSettings(board=board_name, format=format, precision=precision,
                              threads=max(1, int(cpus_per_worker)), conf=conf, iou=iou)
    results, described = predict_sharded(
        bundle, data, [sample.image_id for sample in dataset.items], settings,
        address=address, workers=workers, cpus_per_worker=cpus_per_worker,
        shard_size=shard_size, progress=progress)
    result = evaluate_detections(results, dataset)
    return replace(result, seconds=time.perf_counter() - start), described


def predict_sharded(bundle: Any, data: str | Path, image_ids: list[int], settings: Any, *,
                    address: str | None = None, workers: int | None = None,
                    cpus_per_worker: float = 1.0, shard_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[dict[int, Detections], dict[str, Any]]:
    """Detections for ``image_ids`` of DATA, computed by Ray workers (the path `edgekit eval
    --address` and the export gate's ``--address`` share).

    Args:
        bundle: The opened bundle; its artifacts that did not fail a gate are shipped.
        data: A dataset path every node can read (each worker loads it once).
        image_ids: The images to run, as the driver's own ``load_dataset(data)`` numbers them.
        settings: ``WorkerSettings`` of every worker (board or ``opener``, thresholds).
        address: None starts Ray here; otherwise the cluster to join.
        workers: Actors to start (default: the cluster's CPUs / ``cpus_per_worker``).
        cpus_per_worker: CPUs each actor reserves.
        shard_size: Images per call to a worker (default: an even share per worker, at most
            :data:`SHARD_SIZE`, so a small set still spreads over every worker).
        progress: Called as ``progress(done, total)`` after each shard.

    Returns:
        Detections by image id, and a description of the workers (artifact, executed_on).
    """
    from .bundle_ship import pack, passing_artifacts
    from .cluster import cluster_cpus, ray_session
    from .driver import _check_same_artifact, _start_workers

    uri = str(Path(data).resolve()) if Path(data).exists() else str(data)
    results: dict[int, Detections] = {}
    with ray_session(address) as ray:
        count = workers or max(1, int(cluster_cpus(ray) // cpus_per_worker))
        size = shard_size or max(1, min(SHARD_SIZE, math.ceil(len(image_ids) / count)))
        shards = [image_ids[i:i + size] for i in range(0, len(image_ids), size)]
        actors, _bundle_ref = _start_workers(ray, pack(passing_artifacts(bundle)), settings,
                                             max(1, min(count, len(shards))), cpus_per_worker)
        described = ray.get([a.describe.remote() for a in actors])
        _check_same_artifact(described)
        pool = ray.util.ActorPool(actors)
        for part in pool.map_unordered(lambda a, shard: a.predict_images.remote(uri, shard),
                                       shards):
            results.update(part)
            if progress is not None:
                progress(len(results), len(image_ids))
    return results, described[0]
