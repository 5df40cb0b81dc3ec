"""The one timing helper of every benchmark: device sync, warm-up + repeats, peak memory, tables.

Why a sync: CUDA and MPS queue kernels and return at once, so a clock read right after a call
measures the launch, not the work. :func:`synchronize` waits for THE DEVICE IN USE (``cuda:1``
is not the default device) and for MPS; every timer here syncs before starting and before
stopping, so no row of any benchmark times kernel launches.

Why interleave: :func:`time_interleaved` runs the forms it compares in turns, round after
round, so load from other processes on a shared machine falls on all of them alike and their
ratios stay meaningful. The best of the rounds is the least disturbed (the advice of
:mod:`timeit`); the median shows the spread.

Peak memory (CUDA): PyTorch's caching allocator keeps freed blocks for reuse, so what the
process holds is the RESERVED peak (``torch.cuda.max_memory_reserved``), not only the peak of
live tensors (``max_memory_allocated``); both are reported.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adaattn_video.device_memory import free_cached_memory, is_out_of_memory

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}
MIB = 2**20


def as_device(device: torch.device | str) -> torch.device:
    """``"cuda:1"`` / a :class:`torch.device` -> a :class:`torch.device`."""
    return device if isinstance(device, torch.device) else torch.device(device)


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU, which
    runs synchronously). CUDA waits for that very device, not the current default one."""
    device = as_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Stopwatch:
    """``with Stopwatch(device) as watch: work()`` -> ``watch.seconds``, synced at both ends.

    ``clock`` is :func:`time.perf_counter` (wall) unless given (e.g. :func:`time.process_time`).
    """

    def __init__(self, device: torch.device | str = "cpu", clock: Clock = time.perf_counter):
        self.device = as_device(device)
        self.clock = clock
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = self.clock() - self._start

    @property
    def ms(self) -> float:
        return 1000.0 * self.seconds


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak-memory window on a CUDA ``device`` (nothing elsewhere)."""
    device = as_device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device | str) -> tuple[float | None, float | None]:
    """(peak allocated, peak reserved) MiB since :func:`reset_peak_memory`; (None, None) off
    CUDA. Reserved counts the allocator's cached free blocks too: what the process holds."""
    device = as_device(device)
    if device.type != "cuda":
        return None, None
    return (
        torch.cuda.max_memory_allocated(device) / MIB,
        torch.cuda.max_memory_reserved(device) / MIB,
    )


@dataclass
class Timing:
    """What :func:`time_interleaved` measured of one form: ``times_ms`` of the timed rounds
    (warm-up rounds left out), peak MiB over them (CUDA), and whether it ran out of memory."""

    times_ms: list[float] = field(default_factory=list)
    peak_allocated_mib: float | None = None
    peak_reserved_mib: float | None = None
    out_of_memory: bool = False

    @property
    def best_ms(self) -> float | None:
        return None if self.out_of_memory or not self.times_ms else min(self.times_ms)

    @property
    def median_ms(self) -> float | None:
        return None if self.out_of_memory or not self.times_ms else statistics.median(self.times_ms)

    def _add_peaks(self, allocated: float | None, reserved: float | None) -> None:
        if allocated is not None:
            self.peak_allocated_mib = max(self.peak_allocated_mib or 0.0, allocated)
        if reserved is not None:
            self.peak_reserved_mib = max(self.peak_reserved_mib or 0.0, reserved)


def time_interleaved(
    forms: Mapping[str, Callable[[], object]],
    device: torch.device | str,
    *,
    repeats: int,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
    collect_garbage: bool = False,
) -> dict[str, Timing]:
    """Time every form ``warmup + repeats`` rounds, taking turns in every round (see the module
    docstring), under :func:`torch.inference_mode`; the first ``warmup`` rounds are not kept.

    A form that runs out of CUDA memory is dropped from the later rounds and marked
    ``out_of_memory``; the others go on. ``collect_garbage`` runs :func:`gc.collect` before each
    call (so one form's garbage is not collected inside another's timing).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"expected repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    device = as_device(device)
    timings = {name: Timing() for name in forms}
    for round_index in range(warmup + repeats):
        for name, fn in forms.items():
            timing = timings[name]
            if timing.out_of_memory:
                continue
            if collect_garbage:
                gc.collect()
            reset_peak_memory(device)
            try:
                with torch.inference_mode(), Stopwatch(device, clock) as watch:
                    fn()
            except (torch.OutOfMemoryError, RuntimeError) as err:  # MPS: a RuntimeError
                if not is_out_of_memory(err):
                    raise
                timing.out_of_memory = True
                log.warning("%s: out of memory", name)
                free_cached_memory(device)
                continue
            if round_index >= warmup:
                timing.times_ms.append(watch.ms)
                timing._add_peaks(*peak_memory_mib(device))
    return timings


def time_calls(
    fn: Callable[[], object],
    device: torch.device | str,
    *,
    repeats: int,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    timings = time_interleaved({"call": fn}, device, repeats=repeats, warmup=warmup, clock=clock)
    return timings["call"].times_ms


# -- the table a benchmark prints (its --json dict holds the same numbers) -------------------
def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, pad: bool = True
) -> str:
    """A plain-text table that is also valid Markdown; ``pad`` pads every column to its widest
    cell (aligned in a terminal), else cells are written as they are (``|---|`` rules)."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    for row in cells:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}: {row}")
    widths = [max(len(row[i]) for row in cells) if pad else 1 for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
