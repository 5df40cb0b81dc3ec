"""The driver of a distributed render: checks the inputs, outputs and model settings, plans
every video, opens (or resumes) its job folder, then has :mod:`streamer.cluster.schedule` render
the segments on the Ray actors of :mod:`streamer.cluster.worker`, retry them and join them.

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
import time
from dataclasses import dataclass
from pathlib import Path

from adaattn_video.errors import StylestreamError
from streamer.cluster import import_ray
from streamer.cluster.inputs import ClusterInputError, Work, expand_work
from streamer.cluster.job import Job, fingerprint, job_dir_for
from streamer.cluster.plan import VideoPlan, plan_video
from streamer.cluster.result import ClusterRenderResult, JobProgress, VideoOutcome
from streamer.cluster.schedule import Monitor, Video, finish_video, run_segments
from streamer.cluster.worker import connect_ray
from streamer.guard import command_inputs, guard_output, refuse_overlap
from streamer.render import RenderConfig
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig


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
        connect_timeout_s: how long reaching a ``HOST:PORT`` cluster may take.
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
    connect_timeout_s: float = 30.0
    kill_worker_at: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ClusterConfigError("expected --ray local, auto or a cluster address")
        if self.workers is not None and self.workers < 1:
            raise ClusterConfigError(f"--workers must be >= 1, got {self.workers}")
        if not 0.1 <= self.segment_s <= 3600:
            raise ClusterConfigError(f"--segment-s must be in [0.1, 3600], got {self.segment_s}")
        if not 0 < self.connect_timeout_s <= 3600:
            raise ClusterConfigError(
                f"--ray-timeout-s must be in (0, 3600], got {self.connect_timeout_s}"
            )
        if self.max_retries < 0:
            raise ClusterConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.shared_dir is not None and not Path(self.shared_dir).is_dir():
            raise ClusterConfigError(
                f"--shared-dir {self.shared_dir} is not a folder; create it (on storage every "
                "node mounts at the same path)"
            )


# -- the driver ----------------------------------------------------------------------------
def render_on_ray(
    config: RenderConfig,
    cluster: ClusterConfig,
    *,
    progress: bool = True,
    monitor: Monitor | None = None,
) -> ClusterRenderResult:
    """Render ``config.input`` (a video, or a folder/glob of videos) on Ray workers.

    Every user mistake is found before Ray starts (inputs probed, outputs and job folders
    checked). An input that turns out damaged while it renders fails alone: with many inputs
    the others are rendered and ``result.failed`` lists it; a single input raises its one-line
    error (naming the input). Raises :class:`~adaattn_video.errors.StylestreamError` subclasses for those, and
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
    videos: list[Video] = []
    outcomes: list[VideoOutcome] = []
    for work in works:
        video_config = dataclasses.replace(config, input=work.input, output=work.output)
        try:
            plan = plan_video(work.input, cluster.segment_s)
        except StylestreamError as err:  # many inputs: one that cannot be read stops no other
            if not many:
                raise
            outcomes.append(VideoOutcome(work.input, work.output, error=str(err)))
            continue
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
            finish_video(video, result)
    if not todo:
        return result
    try:
        started = connect_ray(ray, cluster.address, timeout_s=cluster.connect_timeout_s)
        try:
            run_segments(ray, todo, config, cluster, result, progress=progress, monitor=monitor)
        finally:
            if started:
                ray.shutdown()
    except BaseException:
        for video in todo:  # nothing finished: nothing to resume, leave no folder behind
            if not video.job.done:
                video.job.finish()
        raise
    if result.failed and not many:  # one input: its failure is the command's one-line error
        raise ClusterInputError(result.failed[0].error)
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
) -> Video:  # fmt: skip
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
    video = Video(work=Work(config.input, config.output), config=config, plan=plan, job=job,
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


__all__ = [
    "ClusterConfig",
    "ClusterConfigError",
    "ClusterInputError",
    "ClusterRenderResult",
    "JobProgress",
    "render_on_ray",
]
