"""Signals in-process (real SIGINTs to this process, from its main thread): start-up raises at
once, a swallowed one is still acted on, a run started after one stops before its first frame,
and outputs made inside ``deferred()`` are closed by the run, never left half-made."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest
from helpers.media import pattern_frame

from streamer import interrupts
from streamer.batch_runner import ArrayStylizer
from streamer.frames import Frame, FrameSink, FrameSource, SourceCounters, SourceInfo
from streamer.pipeline import Pipeline


@pytest.fixture
def gate() -> Iterator[None]:
    """Install the process-wide handling for one test, then put pytest's handlers back."""
    saved = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    interrupts.install()
    try:
        yield
    finally:
        interrupts.uninstall()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        interrupts._gate.original = None
        interrupts._gate.installed = False


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary


class Frames(FrameSource):
    def __init__(self, count: int) -> None:
        self.count, self.read = count, 0

    @property
    def live(self) -> bool:
        return False

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        return SourceInfo(expected_frames=self.count)

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.read)

    def __iter__(self):
        for i in range(self.count):
            self.read += 1
            time.sleep(0.01)
            yield Frame(i, pattern_frame(i, 8, 8), pts=i)


class Recorder(FrameSink):
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.closed = False

    def write(self, frame: Frame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


def test_start_up_signal_raises_at_once_with_its_exit_code(gate):
    with pytest.raises(interrupts.Interrupted) as error:
        _sigint()
    assert error.value.signum == signal.SIGINT and error.value.exit_code == 130
    assert isinstance(error.value, KeyboardInterrupt)


def test_a_swallowed_signal_is_not_lost(gate):
    # what some C extensions do to a KeyboardInterrupt raised while they run:
    with contextlib.suppress(KeyboardInterrupt):
        _sigint()
    assert interrupts.received() == signal.SIGINT
    with pytest.raises(interrupts.Interrupted):
        interrupts.check()


def test_a_run_started_after_a_signal_stops_before_its_first_frame(gate):
    sink = Recorder()
    with pytest.raises(interrupts.Interrupted):
        _sigint()
    # (as if the Interrupted had been swallowed:) the pipeline gets the pending signal
    with interrupts.deferred():
        stats = Pipeline(Frames(500), ArrayStylizer(lambda b: b), [sink]).run()
    assert stats.interrupted_by == signal.SIGINT and stats.frames_out <= 1
    assert sink.closed


def test_signals_inside_deferred_are_held_for_the_run(gate):
    sink = Recorder()
    with interrupts.deferred():
        _sigint()  # no exception here: an output may be half set up
        stats = Pipeline(Frames(500), ArrayStylizer(lambda b: b), [sink]).run()
    assert stats.interrupted_by == signal.SIGINT and stats.frames_out <= 1 and sink.closed


def test_deferred_without_a_run_raises_when_left(gate):
    with pytest.raises(interrupts.Interrupted), interrupts.deferred():
        _sigint()


def test_signals_during_a_run_stop_it_then_later_ones_are_quiet(gate):
    sink = Recorder()
    pipeline = Pipeline(Frames(10_000), ArrayStylizer(lambda b: b), [sink])

    def monitor(snapshot) -> None:
        if snapshot.frames_out >= 3 and pipeline.stats.interrupted_by is None:
            os.kill(os.getpid(), signal.SIGINT)

    pipeline.monitor = monitor
    stats = pipeline.run()
    assert stats.interrupted_by == signal.SIGINT and 3 <= stats.frames_out < 10_000
    _sigint()  # after the interrupted run: logged, no exception


def test_an_interrupt_rewrapped_by_python_is_still_found() -> None:
    """A signal during start-up raises Interrupted wherever Python is; inside a class body's
    ``__set_name__`` (seen in a library's import on a fresh venv) Python re-raises it as a
    RuntimeError. The command line must still see the interrupt (exit 130, no traceback)."""
    import signal as signals

    from streamer.interrupts import Interrupted, interrupt_in_chain

    class Descriptor:
        def __set_name__(self, owner: type, name: str) -> None:
            raise Interrupted(signals.SIGINT)

    with pytest.raises(RuntimeError) as caught:

        class Owner:
            field = Descriptor()

    found = interrupt_in_chain(caught.value)
    assert isinstance(found, Interrupted) and found.exit_code == 130
    assert interrupt_in_chain(RuntimeError("plain")) is None
