"""BatchRunner's deferral (the CUDA overlap) checked on the CPU: a batch waits for the next
one only while frames are queued behind it, so no live frame waits for the next frame."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
from helpers.media import pattern_frame

from streamer.batch_runner import ArrayStylizer, BatchRunner
from streamer.frames import Frame, FrameSink, FrameSource, SourceCounters, SourceInfo
from streamer.pipeline import Pipeline, PipelineConfig

invert = ArrayStylizer(lambda batch: 255 - batch)


def _frames(n: int) -> list[Frame]:
    return [
        Frame(i, pattern_frame(i, 8, 12), pts=i, time_base=Fraction(1, 25), capture_time_s=0.0)
        for i in range(n)
    ]


def test_overlap_defers_only_while_frames_wait() -> None:
    runner = BatchRunner(invert, overlap=True)
    a, b, c = _frames(3)
    assert runner.submit([a], more_waiting=True) == [] and runner.in_flight == 1
    done = runner.submit([b], more_waiting=False)  # nothing behind b: both come back now
    assert [f.index for f in done] == [0, 1] and runner.in_flight == 0
    assert np.array_equal(done[1].image, 255 - b.image)
    assert runner.submit([c]) == [] and [f.index for f in runner.flush()] == [2]
    assert runner.flush() == []


def test_cpu_runner_never_defers_by_default() -> None:
    runner = BatchRunner(invert)
    assert not runner.overlap
    assert [f.index for f in runner.submit(_frames(2), more_waiting=True)] == [0, 1]


class _SlowLiveSource(FrameSource):
    """A live source: a frame every ``interval_s``; records when each frame was produced."""

    def __init__(self, frames: list[Frame], interval_s: float) -> None:
        self.frames, self.interval_s = frames, interval_s
        self.produced: list[float] = []

    @property
    def live(self) -> bool:
        return True

    def open(self) -> None:
        pass

    def info(self) -> SourceInfo:
        return SourceInfo(expected_frames=None)

    def counters(self) -> SourceCounters:
        return SourceCounters()

    def __iter__(self):
        for frame in self.frames:
            self.produced.append(time.monotonic())
            yield frame
            time.sleep(self.interval_s)

    def close(self) -> None:
        pass


class _TimedSink(FrameSink):
    def __init__(self) -> None:
        self.written: list[tuple[int, float]] = []
        self.lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        with self.lock:
            self.written.append((frame.index, time.monotonic()))

    def close(self) -> None:
        pass


def test_live_frame_is_published_before_the_next_frame_arrives() -> None:
    """With the overlap forced on (as on CUDA) and batch_size 1, frame N reaches the sink
    before frame N + 1 is even produced (the old runner held it until N + 1 came)."""
    source = _SlowLiveSource(_frames(4), interval_s=0.25)
    sink = _TimedSink()
    pipeline = Pipeline(source, invert, [sink], PipelineConfig(batch_size=1))
    pipeline.runner = BatchRunner(invert, overlap=True)
    pipeline.run()
    assert [i for i, _ in sink.written] == [0, 1, 2, 3]
    for (index, written), next_produced in zip(sink.written, source.produced[1:], strict=False):
        assert written < next_produced, f"frame {index} waited for the next frame"
