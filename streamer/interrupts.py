"""Ctrl-C (SIGINT) and SIGTERM from a command's first moment to its exit: never lost, never a
traceback.

The command line calls :func:`install` before its heavy imports. From then on:

- **Start-up** (imports, model load, style encode; nothing written yet): the first signal raises
  :class:`Interrupted` (a ``KeyboardInterrupt``) at once; the command line exits ``128 + signal``
  (130 for Ctrl-C) with one line. The signal is also RECORDED: some C extensions swallow a
  ``KeyboardInterrupt`` raised while they run, and a recorded signal is acted on at the next
  :func:`check` or when the pipeline starts, so it is never lost.
- **Running** (inside :func:`handled_by`, i.e. :meth:`streamer.pipeline.Pipeline.run`): signals go
  to the pipeline's handler (first: finish the batch in flight and finalize the output; second:
  stop now). A signal recorded before is delivered as soon as the handler is in place.
- **Shutting down** (after an interrupted run): further signals are only logged, so a second
  Ctrl-C while the output is being finalized neither corrupts it nor prints a traceback.

Without :func:`install` (a library caller), :func:`handled_by` installs the handlers for the run
only and restores the previous ones afterwards. Handlers can only be set from the main thread;
elsewhere everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, int], None]
"""``handler(signum, count)``: ``count`` = signals received while this handler was in place."""


class Interrupted(KeyboardInterrupt):
    """A signal interrupted start-up (before any output existed)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells report it."""
        return 128 + self.signum


class _Gate:
    def __init__(self) -> None:
        self.installed = False  # install() was called: our handlers stay for the process
        self.pending: int | None = None  # a signal received but not acted on yet
        self.handler: Handler | None = None
        self.handled = 0  # signals delivered to the current handler
        self.quiet = False  # after an interrupted run: only log
        self.deferred = 0  # inside deferred(): record only (outputs exist but no run yet)
        self.original: dict[int, Any] | None = None  # handlers before install*(), to restore


_gate = _Gate()


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _save_original() -> None:
    if _gate.original is None:
        _gate.original = {signum: signal.getsignal(signum) for signum in SIGNALS}


def _exit_now(signum: int, _frame: object) -> None:
    sys.stderr.write("stylestream: interrupted\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def interrupt_in_chain(err: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` that ``err`` wraps (its ``__cause__``/``__context__`` chain),
    or None: an interrupt re-raised as another error by the code it arrived in."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def install_for_imports() -> None:
    """Until :func:`install`: a signal prints one line and ends the process at once with
    ``128 + signal``. For the command line's own imports (torch alone takes most of a
    second), where nothing is open and a ``KeyboardInterrupt`` could only become a traceback."""
    if not _is_main_thread():
        return
    _save_original()
    for signum in SIGNALS:
        signal.signal(signum, _exit_now)


def imports_done() -> None:
    """End :func:`install_for_imports` (the handlers from before it are back): a library that
    imported the command line module keeps its own Ctrl-C behaviour."""
    if not _is_main_thread() or _gate.original is None or _gate.installed:
        return
    for signum, handler in _gate.original.items():
        if signal.getsignal(signum) is _exit_now:
            signal.signal(signum, handler)
    _gate.original = None


def install() -> None:
    """Route SIGINT and SIGTERM through this module until :func:`uninstall` (main thread
    only; calling it again resets the state, e.g. for a new command in the same process)."""
    if not _is_main_thread():
        return
    _save_original()
    _gate.pending = None
    _gate.handler = None
    _gate.handled = 0
    _gate.quiet = False
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    _gate.installed = True


def uninstall() -> None:
    """Give the signals back to the handlers from before :func:`install` -- except when the
    command was interrupted: then the user is still pressing Ctrl-C while the process exits,
    and SIGINT is ignored from here on (Python resets its own handlers to the default at exit,
    and the default would end the process by the signal instead of the 130 it reports)."""
    if not _is_main_thread() or _gate.original is None:
        return
    interrupted = _gate.installed and (_gate.pending is not None or _gate.quiet)
    for signum, handler in _gate.original.items():
        signal.signal(
            signum, signal.SIG_IGN if interrupted and signum == signal.SIGINT else handler
        )
    _gate.original = None
    _gate.installed = False


def _on_signal(signum: int, _frame: object) -> None:
    name = signal.Signals(signum).name
    handler = _gate.handler
    if handler is not None:
        _gate.handled += 1
        handler(signum, _gate.handled)
        return
    if _gate.quiet or _gate.pending is not None:
        log.warning("%s again: already stopping", name)
        return
    _gate.pending = signum
    if _gate.deferred:
        log.warning("%s: stopping as soon as the output is set up", name)
        return
    raise Interrupted(signum)


def check() -> None:
    """Raise :class:`Interrupted` when a signal arrived that nothing acted on yet (call between
    start-up steps; cheap)."""
    signum = _gate.pending
    if signum is not None and _gate.handler is None and not _gate.quiet:
        _gate.quiet = True  # it is being acted on now: further signals only log
        raise Interrupted(signum)


def received() -> int | None:
    """The first signal of this command that was not yet handled by a run, or None."""
    return _gate.pending


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside the block a start-up signal is only recorded, not raised: for the few steps
    between creating an output and the run that will finalize (or remove) it, where an
    exception at an arbitrary line could leave a half-made file. The run
    (:func:`handled_by`) then acts on it at once; a block left without one raises it."""
    _gate.deferred += 1
    try:
        yield
    finally:
        _gate.deferred -= 1
    check()


@contextlib.contextmanager
def handled_by(handler: Handler, *, enabled: bool = True) -> Iterator[None]:
    """Deliver SIGINT/SIGTERM to ``handler(signum, count)`` inside the block.

    A signal received before the block (and not acted on) is delivered on entry, so a run that
    starts after a Ctrl-C stops at once. Not on the main thread, or ``enabled=False``: nothing
    is installed (the caller stops the run some other way).
    """
    if not enabled or not _is_main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    if not _gate.installed:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, _on_signal)
    _gate.handler, _gate.handled = handler, 0
    try:
        pending, _gate.pending = _gate.pending, None
        if pending is not None:
            _gate.handled += 1
            handler(pending, _gate.handled)
        yield
    finally:
        delivered = _gate.handled
        _gate.handler, _gate.handled = None, 0
        if _gate.installed:
            _gate.quiet = _gate.quiet or delivered > 0
        else:
            for signum, old in previous.items():
                signal.signal(signum, old)
            _gate.pending = None
