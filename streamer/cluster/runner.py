"""The driver of a distributed render: plans, schedules segments on the Ray actors of
:mod:`streamer.cluster.worker`, retries, shows progress and joins.

Segment files come back through Ray's object store (no shared filesystem needed) or,
with ``shared_dir``, are written there by the workers.

Faults: an actor whose process dies (killed, out of memory, node lost) is restarted by Ray
(``max_restarts``); the driver hands the segment it was rendering to the next free worker and
counts a retry, up to ``max_retries`` per segment. The driver itself records every finished
segment in the job folder (:mod:`streamer.cluster.job`), so a killed driver loses only the
segments in flight: ``--resume`` reuses the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from streamer.cluster import ClusterError, import_ray
from streamer.cluster.inputs import ClusterInputError, Work, expand_work
from streamer.cluster.job import Job, fingerprint, job_dir_for
from streamer.cluster.join import join_segments
from streamer.cluster.plan import Segment, VideoPlan, plan_video
from streamer.cluster.result import ClusterRenderResult, JobProgress, VideoOutcome
from streamer.cluster.segment import SegmentResult, write_atomic
from streamer.cluster.worker import SegmentWorker, connect_ray, worker_shape
from streamer.guard import command_inputs, guard_output, refuse_overlap
from streamer.render import RenderConfig
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig

log = logging.getLogger(__name__)


REVIVE_TIMEOUT_S = 120.0  # how long a killed worker may take to come back (model reload)


class ClusterConfigError(StylestreamError, ValueError):
    """A ``--ray`` setting is invalid."""


@dataclass(frozen=True)
class ClusterConfig:
    """How a render is spread over Ray workers.

    Attributes:
        address: ``local`` (start Ray on this machine), ``auto`` (the cluster ``ray start``
            made on this machine) or a cluster address (``HOST:6379``, ``ray://HOST:10001``).
            A Ray runtime already initialised in this process is used as it is.
        workers: actors to start (None: one per GPU, else one per two CPUs of the cluster).
        segment_s: about how long a segment is (seconds of video; cut on keyframes).
        resume: reuse the finished, verified segments of an interrupted job.
        shared_dir: a folder every node can read and write: workers write segments there (and
            the job folder lives there) instead of sending them through the object store.
        max_retries: times a segment is handed to a worker again after its worker died.
        kill_worker_at: tests only: (segment, frames) -- the worker rendering that segment for
            the first time kills its own process (SIGKILL) once that many frames are done.
    """

    address: str = "local"
    workers: int | None = None
    segment_s: float = 10.0
    resume: bool = False
    shared_dir: str | None = None
    max_retries: int = 3
    kill_worker_at: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ClusterConfigError("expected --ray local, auto or a cluster address")
        if self.workers is not None and self.workers < 1:
            raise ClusterConfigError(f"--workers must be >= 1, got {self.workers}")
        if not 0.1 <= self.segment_s <= 3600:
            raise ClusterConfigError(f"--segment-s must be in [0.1, 3600], got {self.segment_s}")
        if self.max_retries < 0:
            raise ClusterConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.shared_dir is not None and not Path(self.shared_dir).is_dir():
            raise ClusterConfigError(
                f"--shared-dir {self.shared_dir} is not a folder; create it (on storage every "
                "node mounts at the same path)"
            )


# -- the driver ----------------------------------------------------------------------------
@dataclass
class _Video:
    work: Work
    config: RenderConfig
    plan: VideoPlan
    job: Job
    outcome: VideoOutcome
    remaining: set[int] = field(default_factory=set)

    @property
    def images_folder(self) -> Path | None:
        from streamer.sinks.images import resolve_pattern

        return resolve_pattern(self.config.output).parent if self.config.writes_images else None


Monitor = Callable[[JobProgress], None]


def render_on_ray(
    config: RenderConfig,
    cluster: ClusterConfig,
    *,
    progress: bool = True,
    monitor: Monitor | None = None,
) -> ClusterRenderResult:
    """Render ``config.input`` (a video, or a folder/glob of videos) on Ray workers.

    Every user mistake is found before Ray starts (inputs probed, outputs and job folders
    checked). Raises :class:`~adaattn_video.errors.StylestreamError` subclasses for those, and
    :class:`~streamer.cluster.ClusterError` when the cluster cannot finish the job.
    """
    if config.start_s or config.duration_s is not None:
        raise ClusterConfigError("--start/--duration are not supported with --ray yet")
    ray = import_ray()  # before anything is written: no Ray, one line saying how to get it
    began = time.perf_counter()
    works = expand_work(config.input, config.output)
    inputs = _inputs_of(config, works)
    for work in works:  # before anything is probed: an output is never one of the inputs
        refuse_overlap(work.output, inputs)
    _check_model_settings(config)
    many = len(works) > 1 or Path(config.input).is_dir()
    videos: list[_Video] = []
    outcomes: list[VideoOutcome] = []
    for work in works:
        video_config = dataclasses.replace(config, input=work.input, output=work.output)
        plan = plan_video(work.input, cluster.segment_s)
        outcome = VideoOutcome(work.input, work.output, frames=plan.frames,
                               segments=len(plan.segments))  # fmt: skip
        outcomes.append(outcome)
        job_path = job_dir_for(video_config, work.output, cluster.shared_dir)
        if (
            (many or cluster.resume)
            and not config.overwrite
            and _is_complete(video_config, plan, job_path)
        ):  # an earlier run finished it
            outcome.skipped = True
            continue
        videos.append(_prepare(video_config, plan, job_path, cluster, outcome))
    stages = {"plan": time.perf_counter() - began}
    result = ClusterRenderResult(
        videos=outcomes, untrained=config.stylizer.untrained, stage_s=stages
    )
    todo = [v for v in videos if v.remaining]
    for video in videos:
        if not video.remaining:  # every segment reused: only the join is left
            _finish_video(video, result)
    if not todo:
        return result
    try:
        started = connect_ray(ray, cluster.address)
        try:
            _run(ray, todo, config, cluster, result, progress=progress, monitor=monitor)
        finally:
            if started:
                ray.shutdown()
    except BaseException:
        for video in todo:  # nothing finished: nothing to resume, leave no folder behind
            if not video.job.done:
                video.job.finish()
        raise
    return result


def _inputs_of(config: RenderConfig, works: list[Work]) -> list:
    """Everything the job reads (every input video, the style images, the weights): what
    :mod:`streamer.guard` keeps every output and segment away from."""
    spec = config.stylizer
    return command_inputs([w.input for w in works], spec.styles, spec.weights)


def _check_model_settings(config: RenderConfig) -> None:
    """Find a wrong weights file, style image or model setting on the driver, in one line,
    before any worker starts (cheap: CPU, the style encoded at 64 px)."""
    from adaattn_video.stylizer import open_stylizer

    open_stylizer(
        dataclasses.replace(config.stylizer, device="cpu", precision="fp32", style_size=64)
    )


def interrupted_jobs(config: RenderConfig, cluster: ClusterConfig) -> list[Path]:
    """Job folders an interrupted run of ``config`` left (for the message after Ctrl-C)."""
    try:
        works = expand_work(config.input, config.output)
    except StylestreamError:
        return []
    folders = []
    for work in works:
        video_config = dataclasses.replace(config, input=work.input, output=work.output)
        folder = job_dir_for(video_config, work.output, cluster.shared_dir)
        if (folder / "manifest.json").is_file():
            folders.append(folder)
    return folders


def _prepare(
    config: RenderConfig, plan: VideoPlan, job_path: Path, cluster: ClusterConfig,
    outcome: VideoOutcome,
) -> _Video:  # fmt: skip
    """Check the output, open (or resume) the job folder, find what is left to render."""
    resuming = cluster.resume and (job_path / "manifest.json").is_file()
    inputs = command_inputs(config.input, config.stylizer.styles, config.stylizer.weights)
    if resuming:  # the frames of the interrupted run are there: only the overlap matters
        refuse_overlap(config.output, inputs)
    else:  # the one policy of every command: exists -> --overwrite, never over an input
        guard_output(config.output, inputs=inputs, overwrite=config.overwrite)
    job = Job.open(
        job_path,
        fingerprint=fingerprint(config, plan, cluster.segment_s),
        output=config.output,
        plan=plan,
        resume=cluster.resume,
        overwrite=config.overwrite,
    )
    video = _Video(work=Work(config.input, config.output), config=config, plan=plan, job=job,
                   outcome=outcome)  # fmt: skip
    if config.writes_images and not resuming:
        ImageSequenceSink(ImageSequenceSinkConfig(config.output, overwrite=config.overwrite))
    done = job.verified_done(video.images_folder) if resuming else set()
    outcome.reused = len(done)
    video.remaining = {s.index for s in plan.segments} - done
    return video


def _is_complete(config: RenderConfig, plan: VideoPlan, job_path: Path) -> bool:
    """A finished output of an earlier run: no job folder left, every frame there."""
    from streamer.cluster.join import segment_times

    if job_path.exists() or not Path(config.output).is_file():
        return False
    try:
        return len(segment_times(config.output)) == plan.frames
    except StylestreamError:
        return False


def _run(
    ray: Any,
    videos: list[_Video],
    config: RenderConfig,
    cluster: ClusterConfig,
    result: ClusterRenderResult,
    *,
    progress: bool,
    monitor: Monitor | None,
) -> None:
    from ray.exceptions import RayActorError, RayTaskError

    stages = result.stage_s
    began = time.perf_counter()
    queue: deque[tuple[int, Segment]] = deque(
        (key, s) for key, v in enumerate(videos) for s in v.plan.segments if s.index in v.remaining
    )
    workers, num_cpus, num_gpus, threads = worker_shape(ray, config, cluster.workers, len(queue))
    actor_class = ray.remote(
        num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=2,
        max_restarts=cluster.max_retries, max_task_retries=0,
    )(SegmentWorker)  # fmt: skip
    actors = [actor_class.remote(config, threads) for _ in range(workers)]
    try:
        infos = ray.get([a.info.remote() for a in actors])
    except RayTaskError as err:
        raise _user_error(err) from err
    except RayActorError as err:  # the constructor raised on a worker (files missing there?)
        for actor in actors:
            ray.kill(actor)
        last = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
        raise ClusterError(
            f"a Ray worker could not load the model and style: {last} (every node needs the "
            "weights, the style images and the input under the same paths)"
        ) from err
    result.workers = len(actors)
    result.device = ", ".join(sorted({i["device"] for i in infos}))
    result.nodes = len({i["node"] for i in infos})
    result.worker_setup_s = [i["setup_s"] for i in infos]
    stages["start workers"] = time.perf_counter() - began
    stages["render"] = 0.0  # set below; keeps the stages in the order they happen

    began = time.perf_counter()
    frames_total = sum(v.plan.frames for v in videos)
    frames_done = sum(
        s.frames for v in videos for s in v.plan.segments if s.index not in v.remaining
    )
    segments_total = sum(len(v.plan.segments) for v in videos)
    segments_done = segments_total - len(queue)
    attempts: dict[tuple[int, int], int] = {}
    free = list(actors)
    inflight: dict[Any, tuple[Any, int, Segment]] = {}
    reviving: dict[Any, tuple[Any, float]] = {}  # info() of a restarting actor -> (actor, since)
    bar = _progress_bar(frames_total, frames_done, enabled=progress)
    join_s = 0.0
    last_poll = 0.0
    try:
        while queue or inflight:
            while queue and free:
                key, segment = queue.popleft()
                actor = free.pop(0)
                video = videos[key]
                attempt = attempts.get((key, segment.index), 0)
                kill = cluster.kill_worker_at
                kill_at = kill[1] if kill and attempt == 0 and segment.index == kill[0] else None
                shared = str(video.job.path) if cluster.shared_dir else None
                ref = actor.render.remote(key, video.config, segment, video.plan.time_base,
                                          shared, kill_at)  # fmt: skip
                inflight[ref] = (actor, key, segment)
            if not inflight and not reviving:
                raise ClusterError("every Ray worker died and none could be restarted")
            ready, _ = ray.wait([*inflight, *reviving], num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in reviving:
                    actor, since = reviving.pop(ref)
                    try:
                        ray.get(ref)
                    except RayActorError:
                        if time.monotonic() - since < REVIVE_TIMEOUT_S:
                            time.sleep(0.2)
                            reviving[actor.info.remote()] = (actor, since)
                        else:
                            log.warning("a Ray worker did not come back: going on without it")
                        continue
                    free.append(actor)
                    continue
                actor, key, segment = inflight.pop(ref)
                video = videos[key]
                try:
                    seg_result: SegmentResult = ray.get(ref)
                except RayTaskError as err:
                    raise _user_error(err) from err
                except RayActorError as err:
                    tries = attempts.get((key, segment.index), 0) + 1
                    attempts[(key, segment.index)] = tries
                    result.retries += 1
                    if tries > cluster.max_retries:
                        raise ClusterError(
                            f"segment {segment.index} of {video.work.input} failed {tries} "
                            f"times (its worker died each time; last: {err})"
                        ) from err
                    log.warning("worker died rendering segment %d of %s; retrying",
                                segment.index, video.work.input)  # fmt: skip
                    queue.appendleft((key, segment))
                    reviving[actor.info.remote()] = (actor, time.monotonic())  # Ray restarts it
                    continue
                free.append(actor)
                _store(video, segment, seg_result, cluster)
                result.segment_s.append(seg_result.seconds)
                frames_done += segment.frames
                video.outcome.frames_rendered += segment.frames
                segments_done += 1
                video.remaining.discard(segment.index)
                if not video.remaining:
                    t = time.perf_counter()
                    _finish_video(video, result)
                    join_s += time.perf_counter() - t
            if time.perf_counter() - last_poll >= 0.5 or not (queue or inflight):
                last_poll = time.perf_counter()
                live = _poll(ray, [a for a, _, _ in inflight.values()])
                partial = sum(frames for _, frames in live.values())
                state = JobProgress(
                    frames_done=frames_done + partial,
                    frames_total=frames_total,
                    segments_done=segments_done,
                    segments_total=segments_total,
                    retries=result.retries,
                    elapsed_s=time.perf_counter() - began,
                    workers=live,
                )
                if bar is not None:
                    bar.update(state.frames_done - bar.n)
                    bar.set_postfix(segments=f"{segments_done}/{segments_total}",
                                    retries=result.retries, refresh=False)  # fmt: skip
                if monitor is not None:
                    monitor(state)
    finally:
        if bar is not None:
            bar.close()
        for actor in actors:
            ray.kill(actor)
    stages["render"] = time.perf_counter() - began - join_s  # joins ran in between


def _poll(ray: Any, busy: list[Any]) -> dict[int, tuple[int, int]]:
    """pid -> (segment, frames done) of the busy workers that answer within 0.2 s."""
    refs = [a.progress.remote() for a in busy]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.2) if refs else ([], [])
    out: dict[int, tuple[int, int]] = {}
    for ref in ready:
        try:
            answer = ray.get(ref)
        except Exception:  # a dying worker: its segment is retried, progress can wait
            continue
        if answer is not None:
            pid, _key, segment, frames = answer
            out[pid] = (segment, frames)
    return out


def _store(video: _Video, segment: Segment, seg: SegmentResult, cluster: ClusterConfig) -> None:
    """Put a finished segment where the join (or the user) finds it; record it as done."""
    folder = video.images_folder
    if folder is not None:
        for name in video.job.file_names(segment, folder):
            if seg.files:
                write_atomic(folder / name, seg.files[name])
            else:  # written to the shared folder by the worker
                os.replace(video.job.path / name, folder / name)
    elif seg.files:
        ((name, data),) = seg.files.items()
        write_atomic(video.job.path / name, data)
    video.job.mark_done(seg)


def _finish_video(video: _Video, result: ClusterRenderResult) -> None:
    """Join a video's segments (video output) and drop its job folder."""
    outcome = video.outcome
    began = time.perf_counter()
    if video.images_folder is None:
        joined = join_segments(
            [video.job.segment_path(s) for s in video.plan.segments],
            video.config.output,
            starts=[s.start_pts for s in video.plan.segments],
            time_base=video.plan.time_base,
            audio_from=video.plan.path if video.plan.has_audio else None,
            crash_safe=video.config.crash_safe,
            fragment_s=video.config.fragment_s,
            overwrite=True,  # checked before the job started; a torn join of ours is replaced
        )
        outcome.audio_streams = joined.audio_streams
        outcome.join_s = joined.seconds
        if joined.video_packets != video.plan.frames:
            raise ClusterError(
                f"{video.config.output}: joined {joined.video_packets} frames, the input has "
                f"{video.plan.frames}"
            )
    video.job.finish()
    result.stage_s["join"] = result.stage_s.get("join", 0.0) + time.perf_counter() - began


def _user_error(err: Exception) -> BaseException:
    """The error a worker raised, as the driver should raise it (user errors stay one line)."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, StylestreamError):
        return cause
    return ClusterError(f"a worker failed: {cause or err}")


def _progress_bar(total: int, done: int, *, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="frame", desc="render (ray)", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1, mininterval=0.5)  # fmt: skip


__all__ = [
    "ClusterConfig",
    "ClusterConfigError",
    "ClusterInputError",
    "ClusterRenderResult",
    "JobProgress",
    "render_on_ray",
]
