"""Motion-gated moving average of the AdaAttN statistics across video frames.

AdaAttN renormalises the content features with an attention-weighted mean M and standard
deviation S of the style values (AdaAttN paper, eq. 2-4): ``out = S * norm(F_c) + M``. Where a
frame is nearly the same as the previous one, small content changes still move M and S, and
the decoder turns that into flicker. This module keeps, per stream, the previous frame's M and
S maps and blends them into the current ones where the content did not change:

    g(p)   = momentum * clamp(1 - |Y_t(p) - Y_{t-1}(p)| / threshold, 0, 1)
    M_t(p) <- g(p) * M_{t-1}(p) + (1 - g(p)) * M_t(p)          (same for S)

with Y the luma of the (padded) input frame averaged down to the statistics' resolution (one
value per feature position), so the gate costs one pooling of the frame and one blend of the
maps: near-zero time. Where the content moved or a scene changed, g = 0 and the current
frame's statistics win; :meth:`TemporalStats.reset` forgets everything (a cut, a new style).

The hook: a caller activates one :class:`TemporalStats` around a model call with
:func:`stats_scope`; the stylizer reports its padded input with :func:`observe_frames` and the
attention passes each block of statistics through :func:`filter_stats`. Both are no-ops when
no scope is active (the default, training, export), so the model is unchanged for everyone
else. The state lives in a context variable: two streams on two threads never see each
other's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma weights (inputs are RGB in [0, 1]).
_LUMA = (0.299, 0.587, 0.114)


class TemporalStats:
    """Per-stream state of the statistics smoothing (not thread-safe: one stream, one thread).

    Args:
        momentum: weight of the previous statistics where the content is unchanged, in [0, 1).
        threshold: luma change (in [0, 1], at the statistics' resolution) at which the gate is
            fully closed; smaller = only truly still areas are smoothed.
    """

    def __init__(self, momentum: float = 0.6, threshold: float = 0.04) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if threshold <= 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.momentum = momentum
        self.threshold = threshold
        self._frames: Tensor | None = None  # (B, 1, Hp, Wp) luma of the current batch
        self._luma: dict[tuple[int, int], Tensor] = {}  # last frame's luma per size (1, 1, h, w)
        self._gates: dict[tuple[int, int], Tensor] = {}  # this batch's gates (B, h * w, 1)
        self._stats: dict[tuple[int, int, int], tuple[Tensor, Tensor]] = {}  # (1, h * w, C)
        self._new: set[tuple[int, int, int]] = set()  # maps first stored in this batch

    def reset(self) -> None:
        """Forget the previous frames: the next frame's statistics are used as they are."""
        self._frames = None
        self._luma.clear()
        self._gates.clear()
        self._stats.clear()
        self._new.clear()

    @property
    def has_history(self) -> bool:
        return bool(self._stats)

    def observe(self, padded: Tensor) -> None:
        """The model's input for the next call: (B, 3, Hp, Wp) float in [0, 1]."""
        weights = padded.new_tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        self._frames = (padded.float() * weights).sum(dim=1, keepdim=True)
        self._gates.clear()
        self._new.clear()

    def end_call(self) -> None:
        """The model call is over: a later call that does not :meth:`observe` its input (a
        stylizer without the hook) leaves its statistics alone instead of using stale gates."""
        self._frames = None
        self._gates.clear()

    def _gate(self, size: tuple[int, int]) -> Tensor | None:
        """(B, h * w, 1) gates for statistics of ``size`` (h, w), computed once per batch."""
        if size in self._gates:
            return self._gates[size]
        if self._frames is None:
            return None
        luma = F.adaptive_avg_pool2d(self._frames, size)  # (B, 1, h, w)
        previous = self._luma.get(size)
        # Frame b against frame b - 1; the batch's first frame against the stored one (or
        # against itself when there is none: its gate is zeroed below).
        before = torch.cat([luma[:1] if previous is None else previous, luma[:-1]])
        diff = (luma - before).abs()
        # A position also sees its neighbours' change: features have a receptive field.
        diff = F.max_pool2d(diff, 3, stride=1, padding=1)
        gate = (1.0 - diff / self.threshold).clamp_(0.0, 1.0).mul_(self.momentum)
        if previous is None:  # the batch's first frame has nothing to blend with
            gate[0] = 0.0
        self._luma[size] = luma[-1:].clone()
        self._gates[size] = gate.flatten(2).transpose(1, 2)
        return self._gates[size]

    def filter(
        self, mean: Tensor, std: Tensor, rows: tuple[int, int], size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Blend the statistics of rows ``rows`` (r0, r1) of an (h, w) map in place.

        mean, std: (B, (r1 - r0) * w, C) float32, position-major, frames in stream order.
        Frame b blends with frame b - 1 (already smoothed), frame 0 with the stored state.
        """
        gate = self._gate(size)
        if gate is None:
            return mean, std
        h, w = size
        r0, r1 = rows
        span = slice(r0 * w, r1 * w)
        key = (h, w, mean.shape[-1])
        stored = self._stats.get(key)
        if stored is None:  # a new map: allocated now, filled block by block in this batch
            blank = mean.new_zeros((1, h * w, mean.shape[-1]))
            stored = self._stats[key] = (blank, blank.clone())
            self._new.add(key)
        first = 1 if key in self._new else 0  # no previous statistics: frame 0 stays as it is
        for b in range(first, mean.shape[0]):
            g = gate[b : b + 1, span]
            prev_mean = stored[0][:, span] if b == 0 else mean[b - 1 : b]
            prev_std = stored[1][:, span] if b == 0 else std[b - 1 : b]
            mean[b : b + 1].lerp_(prev_mean, g)
            std[b : b + 1].lerp_(prev_std, g)
        stored[0][:, span] = mean[-1:]
        stored[1][:, span] = std[-1:]
        return mean, std


_ACTIVE: ContextVar[TemporalStats | None] = ContextVar("adaattn_temporal_stats", default=None)


@contextmanager
def stats_scope(stats: TemporalStats | None) -> Iterator[None]:
    """Smooth the statistics of every model call inside the block with ``stats`` (None: off)."""
    token = _ACTIVE.set(stats)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        if stats is not None:
            stats.end_call()


def observe_frames(padded: Tensor) -> None:
    """Hook for the stylizer: the padded model input (B, 3, Hp, Wp); no-op outside a scope."""
    stats = _ACTIVE.get()
    if stats is not None:
        stats.observe(padded)


def filter_stats(
    mean: Tensor, std: Tensor, rows: tuple[int, int], size: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Hook for the attention: smooth one block of statistics (see :meth:`TemporalStats.filter`);
    returns them unchanged outside a scope."""
    stats = _ACTIVE.get()
    if stats is None:
        return mean, std
    return stats.filter(mean, std, rows, size)


__all__ = ["TemporalStats", "filter_stats", "observe_frames", "stats_scope"]
