"""Scheduling a distributed render's segments on Ray actors: the driver's loop.

:func:`run_segments` starts the actors (:class:`~streamer.cluster.worker.SegmentWorker`), hands
each free one the next segment, stores what comes back in the job folder, joins a video once
its last segment is in, and shows progress. Faults: an actor whose process dies is restarted by
Ray (``max_restarts``); its segment goes back to the front of the queue (a retry, up to
``max_retries`` per segment) and the actor rejoins the free ones once it answers again
(within :data:`REVIVE_TIMEOUT_S`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaattn_video.errors import StylestreamError
from streamer.cluster import ClusterError
from streamer.cluster.inputs import Work
from streamer.cluster.job import Job
from streamer.cluster.join import join_segments
from streamer.cluster.plan import Segment, VideoPlan
from streamer.cluster.result import ClusterRenderResult, JobProgress, VideoOutcome
from streamer.cluster.segment import SegmentResult, write_atomic
from streamer.cluster.worker import SegmentWorker, worker_shape
from streamer.render import RenderConfig

if TYPE_CHECKING:
    from streamer.cluster.runner import ClusterConfig

log = logging.getLogger(__name__)

REVIVE_TIMEOUT_S = 120.0  # how long a killed worker may take to come back (model reload)
Monitor = Callable[[JobProgress], None]


@dataclass
class Video:
    """One input video of the job: its settings, plan, job folder, outcome and the indices of
    the segments still to render."""

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


def run_segments(
    ray: Any,
    videos: list[Video],
    config: RenderConfig,
    cluster: ClusterConfig,
    result: ClusterRenderResult,
    *,
    progress: bool,
    monitor: Monitor | None,
) -> None:
    """Render every remaining segment of ``videos`` on new actors, join each finished video;
    fills ``result`` (workers, device, stage times, retries). The actors are killed at the end."""
    began = time.perf_counter()
    queue: deque[tuple[int, Segment]] = deque(
        (key, s) for key, v in enumerate(videos) for s in v.plan.segments if s.index in v.remaining
    )
    actors = _start_actors(ray, config, cluster, len(queue), result)
    result.stage_s["start workers"] = time.perf_counter() - began
    result.stage_s["render"] = 0.0  # set below; keeps the stages in the order they happen
    scheduler = _Scheduler(ray, videos, cluster, result, queue, actors, monitor)
    bar = _progress_bar(scheduler.frames_total, scheduler.frames_done, enabled=progress)
    try:
        scheduler.run(bar)
    finally:
        if bar is not None:
            bar.close()
        for actor in actors:
            ray.kill(actor)
    # joins ran in between
    result.stage_s["render"] = time.perf_counter() - scheduler.began - scheduler.join_s


def _start_actors(
    ray: Any, config: RenderConfig, cluster: ClusterConfig, segments: int,
    result: ClusterRenderResult,
) -> list[Any]:  # fmt: skip
    """Start the actors and wait until each has loaded the model and the style."""
    from ray.exceptions import RayActorError, RayTaskError

    workers, num_cpus, num_gpus, threads = worker_shape(ray, config, cluster.workers, segments)
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
    return actors


class _Scheduler:
    """The state of the loop: queued segments, free / busy / restarting actors, retries and
    progress counters."""

    def __init__(
        self, ray: Any, videos: list[Video], cluster: ClusterConfig,
        result: ClusterRenderResult, queue: deque[tuple[int, Segment]], actors: list[Any],
        monitor: Monitor | None,
    ) -> None:  # fmt: skip
        self.ray, self.videos, self.cluster, self.result = ray, videos, cluster, result
        self.queue = queue
        self.monitor = monitor
        self.began = time.perf_counter()
        self.frames_total = sum(v.plan.frames for v in videos)
        self.frames_done = sum(
            s.frames for v in videos for s in v.plan.segments if s.index not in v.remaining
        )
        self.segments_total = sum(len(v.plan.segments) for v in videos)
        self.segments_done = self.segments_total - len(queue)
        self.attempts: dict[tuple[int, int], int] = {}
        self.free = list(actors)
        self.inflight: dict[Any, tuple[Any, int, Segment]] = {}
        self.reviving: dict[Any, tuple[Any, float]] = {}  # info() of a restarting actor
        self.join_s = 0.0
        self.last_poll = 0.0

    def run(self, bar: Any) -> None:
        while self.queue or self.inflight:
            self._dispatch()
            if not self.inflight and not self.reviving:
                raise ClusterError("every Ray worker died and none could be restarted")
            ready, _ = self.ray.wait([*self.inflight, *self.reviving], num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in self.reviving:
                    self._revived(ref)
                else:
                    self._finished(ref)
            if time.perf_counter() - self.last_poll >= 0.5 or not (self.queue or self.inflight):
                self.last_poll = time.perf_counter()
                self._report(bar)

    def _dispatch(self) -> None:
        """Hand every free actor the next queued segment."""
        while self.queue and self.free:
            key, segment = self.queue.popleft()
            actor = self.free.pop(0)
            video = self.videos[key]
            attempt = self.attempts.get((key, segment.index), 0)
            kill = self.cluster.kill_worker_at
            kill_at = kill[1] if kill and attempt == 0 and segment.index == kill[0] else None
            shared = str(video.job.path) if self.cluster.shared_dir else None
            ref = actor.render.remote(key, video.config, segment, video.plan.time_base,
                                      shared, kill_at)  # fmt: skip
            self.inflight[ref] = (actor, key, segment)

    def _revived(self, ref: Any) -> None:
        """A restarting actor answered (free again) or failed (ask again, or give it up)."""
        from ray.exceptions import RayActorError

        actor, since = self.reviving.pop(ref)
        try:
            self.ray.get(ref)
        except RayActorError:
            if time.monotonic() - since < REVIVE_TIMEOUT_S:
                time.sleep(0.2)
                self.reviving[actor.info.remote()] = (actor, since)
            else:
                log.warning("a Ray worker did not come back: going on without it")
            return
        self.free.append(actor)

    def _finished(self, ref: Any) -> None:
        """A segment came back: store it (join its video when it was the last), or retry it
        when its worker died."""
        from ray.exceptions import RayActorError, RayTaskError, UnserializableException

        actor, key, segment = self.inflight.pop(ref)
        video = self.videos[key]
        try:
            seg_result: SegmentResult = self.ray.get(ref)
        except RayTaskError as err:
            self.free.append(actor)  # the worker is fine: its input was not
            self._fail(key, _user_error(err))
            return
        except UnserializableException as err:  # an error Ray could not send back whole
            self.free.append(actor)
            last = str(err).strip().splitlines()[-1]
            self._fail(key, ClusterError(f"a worker failed on {video.work.input}: {last}"))
            return
        except RayActorError as err:
            self._retry(actor, key, segment, err)
            return
        self.free.append(actor)
        if video.outcome.error is not None:
            return  # another segment of this video failed: this one is not needed any more
        _store(video, segment, seg_result, self.cluster)
        self.result.segment_s.append(seg_result.seconds)
        self.frames_done += segment.frames
        video.outcome.frames_rendered += segment.frames
        self.segments_done += 1
        video.remaining.discard(segment.index)
        if not video.remaining:
            t = time.perf_counter()
            try:
                finish_video(video, self.result)
            except StylestreamError as err:
                self._fail(key, err)
            self.join_s += time.perf_counter() - t

    def _fail(self, key: int, err: BaseException) -> None:
        """A video failed because of its input (damaged, unreadable): drop its queued segments
        and its job folder, record the one-line reason, go on with the other videos. An error
        that is not the user's (a bug, a broken cluster) still ends the job."""
        if not isinstance(err, StylestreamError):
            raise err
        video = self.videos[key]
        if video.outcome.error is not None:
            return
        video.outcome.error = str(err)
        self.queue = deque((k, s) for k, s in self.queue if k != key)
        left = [s for s in video.plan.segments if s.index in video.remaining]
        self.segments_total -= len(left)  # progress counts what can still be rendered
        self.frames_total -= sum(s.frames for s in left)
        video.remaining.clear()
        video.job.finish()
        log.warning("%s failed: %s", video.work.input, err)

    def _retry(self, actor: Any, key: int, segment: Segment, err: Exception) -> None:
        tries = self.attempts.get((key, segment.index), 0) + 1
        self.attempts[(key, segment.index)] = tries
        self.result.retries += 1
        video = self.videos[key]
        if tries > self.cluster.max_retries:
            raise ClusterError(
                f"segment {segment.index} of {video.work.input} failed {tries} "
                f"times (its worker died each time; last: {err})"
            ) from err
        log.warning("worker died rendering segment %d of %s; retrying",
                    segment.index, video.work.input)  # fmt: skip
        self.queue.appendleft((key, segment))
        self.reviving[actor.info.remote()] = (actor, time.monotonic())  # Ray restarts it

    def _report(self, bar: Any) -> None:
        """Progress of the job, with the frames the busy workers are at: bar and monitor."""
        live = _poll(self.ray, [a for a, _, _ in self.inflight.values()])
        partial = sum(frames for _, frames in live.values())
        state = JobProgress(
            frames_done=self.frames_done + partial,
            frames_total=self.frames_total,
            segments_done=self.segments_done,
            segments_total=self.segments_total,
            retries=self.result.retries,
            elapsed_s=time.perf_counter() - self.began,
            workers=live,
        )
        if bar is not None:
            bar.update(state.frames_done - bar.n)
            bar.set_postfix(segments=f"{self.segments_done}/{self.segments_total}",
                            retries=self.result.retries, refresh=False)  # fmt: skip
        if self.monitor is not None:
            self.monitor(state)


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


def _store(video: Video, segment: Segment, seg: SegmentResult, cluster: ClusterConfig) -> None:
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


def finish_video(video: Video, result: ClusterRenderResult) -> None:
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
