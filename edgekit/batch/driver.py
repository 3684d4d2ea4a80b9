"""The driver of a batch run: plan segments, hand them to Ray actors, commit what comes back.

Scheduling, placement and retries are Ray's: workers are actors created with
``max_restarts=-1`` and ``max_task_retries=TASK_RETRIES``, so when a worker process or a whole
node dies Ray restarts the actor (on any node with room) and re-runs the calls it had in
flight, and ``ray.util.ActorPool`` hands each segment to the next free actor. The driver only
commits each returned segment once (file, then record) and skips segments a previous run
completed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import EdgekitError
from .plan import Segment, VideoInfo, split, step_for
from .settings import BatchSettings
from .store import OutputStore
from .summary import video_summary, workers_table
from .worker import BatchWorker, SegmentOutput, WorkerSettings

# How often Ray re-runs a call whose worker (or node) died: enough for lost nodes, finite so a
# file that crashes the decoder is reported instead of retried forever.
TASK_RETRIES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """What the driver reports after each segment (the CLI draws it as a bar)."""

    videos_done: int
    videos_total: int
    frames_done: int
    frames_total: int
    segments_done: int
    segments_total: int
    fps: float


ProgressCallback = Callable[[Progress], None]


def run(model: str | Path, inputs: Iterable[str | Path], out: str | Path, *,
        settings: BatchSettings | None = None, progress: ProgressCallback | None = None,
        file_options: Any = None) -> dict[str, Any]:
    """Runs a bundle over videos on Ray and writes detections, summary and manifest to ``out``.

    Args:
        model: ``sample``, a bundle directory, or a .onnx/.xml/.tflite detector.
        inputs: Video files, folders, globs, list files or URIs.
        out: The output folder; an existing one from the same run is resumed.
        settings: Sampling, sink, tracking, cluster and worker settings.
        progress: Called after each committed segment.
        file_options: ``edgekit.modelfile.FileOptions`` for a plain model file (head, shape,
            labels): applied once here, and the resulting manifest is shipped to the workers.

    Returns:
        The run summary (also written to ``out/summary.json``).
    """
    from .bundle_ship import bundle_sha256, pack, passing_artifacts
    from .cluster import cluster_cpus, ray_session
    from .inputs import expand_inputs

    s = settings or BatchSettings()
    sources = expand_inputs(inputs)
    bundle, board = _bundle_and_board(model, s.board, file_options)
    identity = _identity(bundle_sha256(bundle), s)
    store = OutputStore(out, sink=s.sink)
    store.clean_temporaries()
    resumed = store.begin(identity)
    files = pack(passing_artifacts(bundle))
    started, cpu_started = time.perf_counter(), time.process_time()
    marks: dict[str, float] = {}
    with ray_session(s.address, object_store_mb=s.object_store_mb) as ray:
        marks["connected"] = time.perf_counter()
        count = s.workers or max(1, int(cluster_cpus(ray) // s.cpus_per_worker))
        actors, _bundle_ref = _start_workers(ray, files, _worker_settings(s, board), count,
                                             s.cpus_per_worker)
        described = ray.get([a.describe.remote() for a in actors])
        _check_same_artifact(described)
        marks["workers_ready"] = time.perf_counter()
        pool = ray.util.ActorPool(actors)
        probed = {i.source: i for i in _each_result(ray, pool, lambda a, v: a.probe.remote(v),
                                                    sources)}
        infos = {src: probed.get(src) or _crashed_probe(src) for src in sources}
        plans = {src: split(i, segment_seconds=s.segment_seconds, every=_every(s, i))
                 for src, i in infos.items()}
        records, todo = _resume(store, plans)
        marks["probed"] = time.perf_counter()
        errors: dict[str, list[str]] = {src: [] for src in sources}
        tracker = _Tracker(infos, plans, records, progress)
        returned: set[str] = set()
        for output in _each_result(ray, pool, lambda a, seg: a.process.remote(seg), todo):
            returned.add(output.segment.key)
            if output.error is not None:
                errors[output.segment.source].append(
                    f"segment {output.segment.index} (frames {output.segment.start}-"
                    f"{output.segment.stop}): {output.error}")
            else:
                records[output.segment.key] = store.commit(output)
            tracker.done(output)
        for segment in todo:
            if segment.key not in returned:
                errors[segment.source].append(
                    f"segment {segment.index}: its worker died {TASK_RETRIES + 1} times while "
                    "processing it (a file that crashes the decoder, or nodes lost repeatedly)")
        marks["processed"] = time.perf_counter()
    summary = _summary(infos, plans, records, errors, resumed=resumed,
                       skipped=len(records) - tracker.committed,
                       seconds=time.perf_counter() - started)
    summary["timings_s"] = {**_timings(started, marks), "driver_cpu": round(
        time.process_time() - cpu_started, 3)}
    manifest = {**store.read_manifest(), "edgekit_version": __version__,
                "artifact": described[0]["artifact"], "artifact_sha256": described[0]["sha256"],
                "bundle_sha256": identity["bundle_sha256"], "board": board,
                "workers_started": described, "workers": workers_table(list(records.values()))}
    store.write_json("manifest.json", manifest)
    store.write_json("summary.json", summary)
    return {**summary, "manifest": manifest, "out": str(store.root)}


def _each_result(ray: Any, pool: Any, call: Callable[[Any, Any], Any],
                 items: Iterable[Any]) -> Iterator[Any]:
    """Results of ``call`` over ``items`` from the actor pool, as they come.

    A call whose worker died more than ``TASK_RETRIES`` times raises there; it is skipped here
    (the caller reports the items that brought no result), so one poison file cannot stop the
    run, nor make Ray retry it forever.
    """
    for item in items:
        pool.submit(call, item)
    while pool.has_next():
        try:
            yield pool.get_next_unordered()
        except ray.exceptions.RayActorError:
            continue


def _crashed_probe(source: str) -> VideoInfo:
    from .plan import video_id

    return VideoInfo(source=source, video_id=video_id(source), fps=0.0, frames=0, width=0,
                     height=0, error=f"its worker died {TASK_RETRIES + 1} times probing it")


def _timings(started: float, marks: dict[str, float]) -> dict[str, float]:
    """Where the wall time went: Ray start/connect, actors loading the model, probing, work."""
    points = [("ray_connect", "connected"), ("workers_start", "workers_ready"),
              ("probe", "probed"), ("segments", "processed")]
    out, last = {}, started
    for name, mark in points:
        out[name] = round(marks[mark] - last, 3)
        last = marks[mark]
    return out


def _bundle_and_board(model: str | Path, board: str | None,
                      file_options: Any = None) -> tuple[Any, str]:
    """Opens the bundle once here, and names the board whose artifact choice the workers make.

    The board is resolved on the driver (given, or this host's) and passed by name, so every
    worker picks the same artifact wherever it runs.
    """
    from ..devices.detect import gather_facts
    from ..devices.runners import open_model, resolve_board

    return (open_model(model, file_options=file_options),
            resolve_board(board, gather_facts()).name)


def _identity(bundle_sha: str, s: BatchSettings) -> dict[str, Any]:
    """The settings that change the rows; a resumed run must match them exactly.

    Returned as JSON would read it back (tuples become lists), to compare with the manifest.
    """
    return json.loads(json.dumps({"bundle_sha256": bundle_sha, "every": s.every, "fps": s.fps,
            "segment_seconds": s.segment_seconds, "sink": s.sink, "track": s.track,
            "config": asdict(s.analytics) if s.analytics else None, "conf": s.conf,
            "iou": s.iou, "format": s.format, "precision": s.precision}))


def _worker_settings(s: BatchSettings, board: str) -> WorkerSettings:
    return WorkerSettings(board=board, format=s.format, precision=s.precision,
                          threads=max(1, int(s.cpus_per_worker)), conf=s.conf, iou=s.iou,
                          track=s.track, analytics=s.analytics)


def _start_workers(ray: Any, files: dict[str, bytes], settings: WorkerSettings, count: int,
                   cpus: float) -> tuple[list[Any], Any]:
    """Starts ``count`` actors spread over the nodes; returns them and the bundle's ObjectRef.

    The bundle goes into the object store once; every actor (and every restart) reads it.
    The caller must hold the returned ref until the run ends: an actor restarted after its
    node died reads it again, and Ray frees an object once no live holder refers to it
    (seen here as ReferenceCountingAssertionError in the restarted actor).
    """
    files_ref = ray.put(files)
    actor = ray.remote(BatchWorker).options(
        num_cpus=cpus, max_restarts=-1, max_task_retries=TASK_RETRIES,
        scheduling_strategy="SPREAD")
    return [actor.remote([files_ref], settings) for _ in range(count)], files_ref


def _check_same_artifact(described: list[dict[str, Any]]) -> None:
    chosen = {(d["artifact"], d["sha256"]) for d in described}
    if len(chosen) > 1:
        raise EdgekitError(
            f"Workers chose different artifacts ({', '.join(sorted(a for a, _ in chosen))}): "
            "their nodes have different runtimes installed.",
            hint="Pass --format and --precision so every node runs the same artifact.",
        )


def _every(s: BatchSettings, info: VideoInfo) -> int:
    return step_for(every=s.every, fps=s.fps, video_fps=info.fps)


def _resume(store: OutputStore, plans: dict[str, list[Segment]]
            ) -> tuple[dict[str, dict[str, Any]], list[Segment]]:
    records: dict[str, dict[str, Any]] = {}
    todo: list[Segment] = []
    for segments in plans.values():
        for segment in segments:
            record = store.completed(segment)
            if record is None:
                todo.append(segment)
            else:
                records[segment.key] = record
    return records, todo


class _Tracker:
    """Counts segments, frames and finished videos for the progress callback."""

    def __init__(self, infos: dict[str, VideoInfo], plans: dict[str, list[Segment]],
                 records: dict[str, dict[str, Any]], progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.left = {src: sum(1 for seg in segs if seg.key not in records)
                     for src, segs in plans.items()}
        self.frames_total = sum(seg.expected_frames(infos[src].frames)
                                for src, segs in plans.items() for seg in segs)
        self.frames_done = sum(r["frames"] for r in records.values())
        self.segments_total = sum(len(segs) for segs in plans.values())
        self.segments_done = len(records)
        self.committed = 0
        self.frames_now = 0
        self.start = time.perf_counter()
        self._report()

    def done(self, output: SegmentOutput) -> None:
        self.left[output.segment.source] -= 1
        self.segments_done += 1
        self.frames_done += output.frames
        self.frames_now += output.frames
        self.committed += output.error is None
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.start
        self.progress(Progress(
            videos_done=sum(1 for n in self.left.values() if n == 0),
            videos_total=len(self.left), frames_done=self.frames_done,
            frames_total=max(self.frames_total, self.frames_done),
            segments_done=self.segments_done, segments_total=self.segments_total,
            fps=self.frames_now / elapsed if elapsed > 0 else 0.0))


def _summary(infos: dict[str, VideoInfo], plans: dict[str, list[Segment]],
             records: dict[str, dict[str, Any]], errors: dict[str, list[str]], *,
             resumed: bool, skipped: int, seconds: float) -> dict[str, Any]:
    videos = []
    for src, info in infos.items():
        mine = [records[seg.key] for seg in plans[src] if seg.key in records]
        every = plans[src][0].every if plans[src] else 1
        videos.append(video_summary(info, mine, segments=len(plans[src]), every=every,
                                    errors=errors[src]))
    frames = sum(v["frames_processed"] for v in videos)
    return {
        "videos": videos,
        "totals": {
            "videos": len(videos),
            "complete": sum(v["status"] == "complete" for v in videos),
            "failed": [v["source"] for v in videos if v["status"] != "complete"],
            "frames": frames,
            "detections": sum(v["detections"] for v in videos),
            "segments": sum(len(p) for p in plans.values()),
            "segments_skipped": skipped,
            "resumed": resumed,
            "seconds": round(seconds, 3),
        },
    }
