"""The pipeline: order and completeness, batching, errors from every stage (no hang, sinks
closed), live drop-oldest, stop, stats; the CUDA pinned-memory path on a GPU."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from helpers.media import pattern_frame

from adaattn_video.errors import StylestreamError
from streamer.batch_runner import ArrayStylizer, BatchRunner
from streamer.frames import Frame, FrameSink, FrameSource, SourceCounters, SourceInfo
from streamer.pipeline import (
    Pipeline,
    PipelineConfig,
    PipelineError,
    PipelineUserError,
)
from streamer.queues import END, FrameQueue
from streamer.sources import InputDamagedError


class ListSource(FrameSource):
    """Frames from a list (optionally live, optionally failing after ``fail_after`` frames)."""

    def __init__(self, frames, *, live=False, fail_after=None, delay_s=0.0):
        self.frames, self._live = frames, live
        self.fail_after, self.delay_s = fail_after, delay_s
        self.opened = self.closed = False

    @property
    def live(self):
        return self._live

    def open(self):
        self.opened = True

    def info(self):
        return SourceInfo(expected_frames=len(self.frames))

    def counters(self):
        return SourceCounters()

    def __iter__(self):
        for i, frame in enumerate(self.frames):
            if self.fail_after is not None and i == self.fail_after:
                raise InputDamagedError(f"damaged at frame {i}", i)
            if self.delay_s:
                time.sleep(self.delay_s)
            yield frame

    def close(self):
        self.closed = True


class RecordingSink(FrameSink):
    def __init__(self, fail_at=None):
        self.frames, self.fail_at = [], fail_at
        self.closed = self.ended = False

    def write(self, frame):
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise OSError("disk full")
        self.frames.append(frame)

    def end_of_stream(self):
        self.ended = True

    def close(self):
        self.closed = True


def make_frames(n, size=(16, 24)):
    return [
        Frame(
            i,
            pattern_frame(i, *size),
            pts=10 * i,
            time_base=Fraction(1, 250),
            capture_time_s=time.time(),
        )
        for i in range(n)
    ]


invert = ArrayStylizer(lambda batch: 255 - batch)


def test_every_frame_in_order_with_timing_kept():
    frames = make_frames(11)
    source, sinks = ListSource(frames), [RecordingSink(), RecordingSink()]
    stats = Pipeline(source, invert, sinks, PipelineConfig(batch_size=3, max_queue_frames=2)).run()
    for sink in sinks:  # several outputs at once get the same frames
        assert [f.index for f in sink.frames] == list(range(11))
        assert [(f.pts, f.time_base) for f in sink.frames] == [(f.pts, f.time_base) for f in frames]
        for got, want in zip(sink.frames, frames, strict=True):
            np.testing.assert_array_equal(got.image, 255 - want.image)
        assert sink.closed and sink.ended
    assert source.opened and source.closed
    assert stats.frames_in == stats.frames_out == 11 and stats.dropped == 0 and stats.completed
    assert set(stats.stage_busy_s) == {"decode", "stylize", "write"}


def test_batches_never_mix_frame_sizes():
    sizes = []

    def record(batch):
        sizes.append(batch.shape)
        return batch

    frames = make_frames(3, (16, 16)) + [
        Frame(3 + i, pattern_frame(i, 8, 8), pts=30 + i) for i in range(3)
    ]
    sink = RecordingSink()
    Pipeline(ListSource(frames), ArrayStylizer(record), [sink], PipelineConfig(batch_size=4)).run()
    assert [s[1:3] for s in sizes] == [(16, 16), (8, 8)]
    assert [f.index for f in sink.frames] == list(range(6))


def test_real_stylizer_batched_equals_per_frame(untrained_stylizer):
    frames = make_frames(5, (32, 32))
    outputs = {}
    for batch_size in (1, 4):
        sink = RecordingSink()
        Pipeline(
            ListSource(frames), untrained_stylizer, [sink], PipelineConfig(batch_size=batch_size)
        ).run()
        outputs[batch_size] = np.stack([f.image for f in sink.frames])
    assert outputs[1].shape == (5, 32, 32, 3)
    # float32 convolutions batched vs one by one differ in summation order: +-1 after rounding
    assert np.abs(outputs[1].astype(int) - outputs[4]).max() <= 1


def test_failing_stylizer_stops_everything_with_its_error():
    calls = []

    def explode(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise ZeroDivisionError("model blew up")
        return batch

    sink = RecordingSink()
    source = ListSource(make_frames(500), delay_s=0.001)
    started = time.monotonic()
    with pytest.raises(PipelineError) as error:
        Pipeline(source, ArrayStylizer(explode), [sink], PipelineConfig(batch_size=2)).run()
    assert time.monotonic() - started < 10  # no hang
    assert error.value.stage == "stylize" and "model blew up" in str(error.value)
    assert isinstance(error.value.__cause__, ZeroDivisionError)
    assert not isinstance(error.value, StylestreamError)  # a bug keeps its traceback
    assert sink.closed and not sink.ended and len(sink.frames) <= 4
    assert source.closed


def test_failing_sink_stops_everything_and_closes_every_sink():
    good, bad = RecordingSink(), RecordingSink(fail_at=5)
    with pytest.raises(PipelineError, match="disk full") as error:
        Pipeline(ListSource(make_frames(200)), invert, [good, bad]).run()
    assert error.value.stage == "write"
    assert good.closed and bad.closed


def test_damaged_source_renders_frames_before_the_damage_first():
    sink = RecordingSink()
    with pytest.raises(PipelineUserError, match="damaged at frame 7") as error:
        Pipeline(
            ListSource(make_frames(20), fail_after=7), invert, [sink], PipelineConfig(batch_size=3)
        ).run()
    assert error.value.stage == "decode" and isinstance(error.value, StylestreamError)
    assert [f.index for f in sink.frames] == list(range(7))  # all of them, stylized and written
    assert sink.closed and not sink.ended  # not a complete input: no end_of_stream


def test_live_source_drops_oldest_and_counts():
    frames = make_frames(60)

    def slow(batch):
        time.sleep(0.02)
        return batch

    sink = RecordingSink()
    stats = Pipeline(
        ListSource(frames, live=True),
        ArrayStylizer(slow),
        [sink],
        PipelineConfig(batch_size=2, max_queue_frames=2),
    ).run()
    written = [f.index for f in sink.frames]
    assert stats.dropped > 0
    assert stats.frames_out == len(written) == stats.frames_in - stats.dropped
    assert written == sorted(written) and written[-1] == 59  # the newest frame always makes it


def test_offline_source_never_drops_even_when_slow():
    def slow(batch):
        time.sleep(0.005)
        return batch

    sink = RecordingSink()
    stats = Pipeline(
        ListSource(make_frames(40)), ArrayStylizer(slow), [sink], PipelineConfig(max_queue_frames=1)
    ).run()
    assert stats.dropped == 0 and len(sink.frames) == 40


def test_config_override_makes_a_file_behave_live():
    pipeline = Pipeline(ListSource([]), invert, [RecordingSink()], PipelineConfig(drop_oldest=True))
    assert pipeline.queues["decoded"].drop_oldest
    pipeline = Pipeline(
        ListSource([], live=True), invert, [RecordingSink()], PipelineConfig(drop_oldest=False)
    )
    assert not pipeline.queues["decoded"].drop_oldest


def test_stop_from_another_thread_finishes_cleanly():
    sink = RecordingSink()

    def slow(batch):
        time.sleep(0.01)
        return batch

    pipeline = Pipeline(
        ListSource(make_frames(10_000, (8, 8))),
        ArrayStylizer(slow),
        [sink],
        PipelineConfig(batch_size=2),
    )
    threading.Timer(0.3, pipeline.stop).start()
    stats = pipeline.run()
    assert 0 < stats.frames_out < 10_000 and not stats.completed
    assert sink.closed and not sink.ended
    # what was written is a gap-free prefix: nothing in the middle was lost
    assert [f.index for f in sink.frames] == list(range(len(sink.frames)))


def test_monitor_sees_progress_and_the_final_state():
    snapshots = []
    stats = Pipeline(
        ListSource(make_frames(30), delay_s=0.005),
        invert,
        [RecordingSink()],
        PipelineConfig(monitor_interval_s=0.02),
        monitor=snapshots.append,
    ).run()
    assert len(snapshots) >= 2 and snapshots[-1].frames_out == 30 == stats.frames_out
    assert [s.frames_out for s in snapshots] == sorted(s.frames_out for s in snapshots)
    assert stats.latency_p50_ms is not None and stats.latency_p95_ms >= stats.latency_p50_ms
    assert "frames out" in stats.status_line() and "stylize" in stats.stage_summary()


def test_pipeline_needs_a_sink_and_valid_config():
    with pytest.raises(ValueError, match="at least one sink"):
        Pipeline(ListSource([]), invert, [])
    with pytest.raises(ValueError, match="batch_size"):
        PipelineConfig(batch_size=0)


def test_stylizer_returning_the_wrong_shape_is_an_error():
    with pytest.raises(PipelineError, match=r"\(1, H, W, 3\) uint8"):
        Pipeline(
            ListSource(make_frames(2)), ArrayStylizer(lambda b: b[..., 0]), [RecordingSink()]
        ).run()


# -- the queue -----------------------------------------------------------------------------
def test_queue_drop_oldest_keeps_the_newest():
    queue = FrameQueue(2, drop_oldest=True)
    for item in range(5):
        assert queue.put(item)
    assert queue.dropped == 3 and [queue.get(), queue.get()] == [3, 4]


def test_queue_waits_end_on_stop():
    queue, stop = FrameQueue(1, poll_s=0.01), threading.Event()
    queue.put("a")
    stop.set()
    started = time.monotonic()
    assert queue.put("b", stop) is False  # full and stopped: gives up instead of blocking
    assert queue.get(stop) == "a" and queue.get(stop) is None  # empty and stopped
    assert queue.get(timeout_s=0.05) is None
    assert time.monotonic() - started < 1
    queue = FrameQueue(3)
    for item in ("x", "y", END):
        queue.put(item)
    assert queue.discard_until_end() == 2 and len(queue) == 0


# -- GPU -----------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pinned_async_path_matches_cpu():
    from adaattn_video.checkpoint import open_model
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    style = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    results = {}
    for device in ("cpu", "cuda"):
        stylizer = FrameStylizer(open_model(None, untrained=True), StylizerConfig(device=device))
        stylizer.set_style(style)
        runner = BatchRunner(stylizer)
        assert runner.cuda == (device == "cuda")
        frames = make_frames(7, (32, 48))
        out = []
        for i in range(0, 7, 3):  # batches of 3, 3, 1: exercises buffer reuse and resizing
            out += runner.submit(frames[i : i + 3])
        out += runner.flush()
        assert [f.index for f in out] == list(range(7))
        results[device] = np.stack([f.image for f in out])
    # cuDNN vs CPU convolutions (TF32 may be on): small differences after rounding to uint8
    assert np.abs(results["cpu"].astype(int) - results["cuda"]).mean() < 2
