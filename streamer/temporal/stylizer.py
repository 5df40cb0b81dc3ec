"""The temporal wrapper: a stylizer with per-stream memory, same interface as FrameStylizer.

:class:`TemporalStylizer` wraps a :class:`~adaattn_video.stylizer.FrameStylizer` (or any
stylizer with ``stylize_tensor``) and applies :class:`~streamer.temporal.options.TemporalOptions`
(``temporal`` off/stats/flow, ``keyframe_interval``, ``work_size``). Per frame:

1. Scene cut? (:mod:`streamer.temporal.cuts`) -> reset. A change of style, alpha or frame size
   resets too, as does :meth:`TemporalStylizer.reset` (region change, source reconnect).
2. Keyframe due (every N-th frame)? Otherwise the flow to the last keyframe decides: reliable
   on at least ``temporal_min_valid`` of the frame -> the keyframe's output warped to this frame;
   else a fallback: the frame is stylized.
3. Stylizing runs at ``work_size`` (then :func:`~streamer.temporal.guided.guided_upsample`),
   with the statistics smoothing active in ``stats`` mode; in ``flow`` mode the previous output,
   warped, is blended in where the flow is reliable:
   ``out = cur + strength * valid * (warp(prev_out) - cur)``.

In ``flow`` mode with every frame stylized, the flow of a batch is computed on a worker thread
while the model runs. Not thread-safe (one stream = one stylize thread), except :meth:`reset`,
which may be called from any thread and takes effect on the next frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from adaattn_video.settings import format_size, output_size
from adaattn_video.stylizer import Uint8FrameInterface
from adaattn_video.temporal_stats import TemporalStats, stats_scope
from streamer.temporal.cuts import SceneCutDetector
from streamer.temporal.flow import FlowEstimator, FlowThread, Motion
from streamer.temporal.guided import guided_upsample
from streamer.temporal.options import TemporalOptions, TemporalSettingError
from streamer.temporal.state import Reference, StreamState, TemporalCounters
from streamer.temporal.warp import blend, flow_to_device, warp

log = logging.getLogger(__name__)


def _style_of(inner: Any) -> object:
    """The inner stylizer's current style: its ActiveStyle object (replaced as a whole on every
    switch, so identity tells a switch), else its style id."""
    try:
        return inner.style
    except (AttributeError, RuntimeError):
        return getattr(inner, "style_id", None)


class TemporalStylizer(Uint8FrameInterface):
    """One stream's stylizer: ``inner`` plus temporal memory (see the module docstring).

    ``stylizer(frames)`` takes (H, W, 3) or (B, H, W, 3) uint8 numpy/torch, frames in stream
    order, and returns the same layout. ``counters`` count frames by how they were made.
    """

    def __init__(
        self,
        inner: Any,
        options: TemporalOptions | None = None,
        *,
        watch: Callable[[], object] | None = None,
    ) -> None:
        """``watch``: read before every batch; a value different from the last one resets the
        state (e.g. a network source's outage and reconnect counts: the picture after an outage
        is not the one before it)."""
        self.inner = inner
        self.watch = watch
        self._watched: object = None if watch is None else watch()
        self.options = options or TemporalOptions()
        if self.options.work_size is not None and not hasattr(inner, "fit_content"):
            raise TemporalSettingError(
                "work_size needs a plain stylizer (not regions): its frames are resized before "
                "the model"
            )
        opts = self.options
        self.counters = TemporalCounters()
        self.state = StreamState(
            TemporalStats(opts.temporal_stats_momentum, opts.temporal_stats_threshold),
            SceneCutDetector(hist_threshold=opts.temporal_cut_threshold),
        )
        self.flow = FlowEstimator(opts.temporal_flow_size, opts.temporal_flow_preset)
        self._flow_thread = FlowThread()
        self._reset_requested = False

    # -- the stylizer interface ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def style_id(self) -> str | None:
        return self.inner.style_id

    @property
    def alpha(self) -> float:
        return self.inner.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.inner.alpha = value  # the next frame sees the change and resets

    def set_style(self, *args: Any, **kwargs: Any) -> Any:
        """``inner.set_style``; the next frame starts a fresh temporal state."""
        active = self.inner.set_style(*args, **kwargs)
        self.reset()
        return active

    def reset(self) -> None:
        """Forget the previous frames before the next one (any thread): call it on a region
        change, a source reconnect or a seek."""
        self._reset_requested = True

    def close(self) -> None:
        """Stop the flow worker thread (the wrapper stays usable: it restarts on demand)."""
        self._flow_thread.close()

    def status(self) -> str:
        """A status-line fragment, e.g. ``temporal flow: 40 stylized, 38 warped, ...``."""
        return f"temporal {self.options.temporal}: {self.counters.status()}"

    # -- frames ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def stylize_uint8(self, frames: Tensor) -> Tensor:
        """(B, H, W, 3) uint8 tensor (any device), in stream order -> (B, H', W', 3) uint8 on
        ``device``."""
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"expected (B, H, W, 3) uint8 frames, got {tuple(frames.shape)} {frames.dtype}"
            )
        if not self.options.active:
            return self.inner.stylize_uint8(frames)
        self._check_watch()
        content = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        fit = getattr(self.inner, "fit_content", None)
        if fit is not None:
            content = fit(content)
        self._check_context(tuple(frames.shape[1:3]))
        grays = [self.flow.prepare(f) for f in frames.cpu().numpy()]
        outputs = []
        for start, stop, cut in self._segments(grays):
            if cut:
                self._reset(cut=True)
            if self.options.keyframe_interval == 1:
                outputs.append(self._every_frame(content[start:stop], grays[start:stop]))
            else:
                outputs.extend(
                    self._keyed(content[i : i + 1], grays[i]) for i in range(start, stop)
                )
        self.counters.frames += len(grays)
        out = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        # Not in place: the state holds views of these outputs.
        return out.mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def stylize_tensor(self, content: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> float (through the uint8 path: the flow and the cut
        detector work on uint8 frames)."""
        frames = content.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return self.stylize_uint8(frames).permute(0, 3, 1, 2).float().div_(255.0)

    # -- resets ------------------------------------------------------------------------------
    def _check_watch(self) -> None:
        if self.watch is None:
            return
        value = self.watch()
        if value != self._watched:
            self._watched = value
            self._reset_requested = True

    def _check_context(self, size: tuple[int, int]) -> None:
        """Reset when the style, alpha or frame size changed, or a reset was requested."""
        style = _style_of(self.inner)
        context = (style, getattr(self.inner, "alpha", None), size)
        old = self.state.context
        same_style = bool(old) and (old[0] is style or (isinstance(style, str) and old[0] == style))
        changed = bool(old) and (not same_style or old[1:] != context[1:])
        if changed or self._reset_requested:
            self._reset_requested = False
            self._reset()
        self.state.context = context

    def _reset(self, *, cut: bool = False) -> None:
        self.state.clear(keep_cut_history=cut)
        self.counters.resets += 1
        self.counters.cuts += int(cut)

    def _segments(self, grays: list[np.ndarray]) -> list[tuple[int, int, bool]]:
        """Split a batch at scene cuts: [(start, stop, starts_with_cut), ...]."""
        cuts = [self.state.cuts.is_cut(gray) for gray in grays]
        starts = [0, *(i for i in range(1, len(grays)) if cuts[i])]
        stops = [*starts[1:], len(grays)]
        return [(a, b, cuts[a]) for a, b in zip(starts, stops, strict=True)]

    # -- the two schedules -------------------------------------------------------------------
    def _every_frame(self, content: Tensor, grays: list[np.ndarray]) -> Tensor:
        """Every frame stylized (as one batch); ``flow``: each blended with the previous output
        warped, the flows computed on the worker thread while the model runs."""
        motions = None
        if self.options.temporal == "flow":
            previous = None if self.state.previous is None else self.state.previous.gray
            motions = self._flow_thread.submit(self._chain_motions, grays, previous)
        out = self._stylize(content)
        if motions is None:
            self.state.previous = Reference(grays[-1], out[-1:])
            return out
        for i, motion in enumerate(motions.result()):
            if motion is not None and self.state.previous is not None:
                out[i : i + 1] = self._blend(out[i : i + 1], self.state.previous.output, motion)
            self.state.previous = Reference(grays[i], out[i : i + 1])
        return out

    def _chain_motions(
        self, grays: list[np.ndarray], previous: np.ndarray | None
    ) -> list[Motion | None]:
        """Motion of each frame relative to the one before (None for a first frame)."""
        references = [previous, *grays[:-1]]
        return [
            None if ref is None or ref.shape != gray.shape else self.flow.motion(gray, ref)
            for gray, ref in zip(grays, references, strict=True)
        ]

    def _keyed(self, content: Tensor, gray: np.ndarray) -> Tensor:
        """One frame of ``keyframe_interval`` > 1: warped from the last keyframe when one is
        recent and the motion to it is reliable, else stylized (and made the keyframe)."""
        state, opts = self.state, self.options
        key = state.keyframe
        if key is not None and state.since_keyframe < opts.keyframe_interval:
            motion = self.flow.motion(gray, key.gray)
            if motion.valid_fraction >= opts.temporal_min_valid:
                flow, _ = flow_to_device(
                    motion.flow, motion.valid, key.output.shape[-2:], self.device
                )
                out = warp(key.output, flow)
                state.previous = Reference(gray, out)
                state.since_keyframe += 1
                self.counters.warped += 1
                return out
            self.counters.fallbacks += 1
        out = self._stylize(content)
        previous = state.previous
        if opts.temporal == "flow" and previous is not None:
            motion = self.flow.motion(gray, previous.gray)
            out = self._blend(out, previous.output, motion)
        state.keyframe = state.previous = Reference(gray, out)
        state.since_keyframe = 1
        return out

    # -- stylizing and blending ---------------------------------------------------------------
    def _stylize(self, content: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 3, H, W) float32: the model (at ``work_size`` when smaller, then
        guided upsampling), with the statistics smoothing in ``stats`` mode."""
        stats = self.state.stats if self.options.temporal == "stats" else None
        self.counters.stylized += content.shape[0]
        h, w = content.shape[-2:]
        work = (
            (h, w) if self.options.work_size is None else output_size(self.options.work_size, h, w)
        )
        with stats_scope(stats):
            if work[0] >= h and work[1] >= w:
                return self.inner.stylize_tensor(content).float()
            small = F.interpolate(content, size=work, mode="bilinear", antialias=True)
            low = self.inner.stylize_tensor(small, fit=False)
        return guided_upsample(low, small, content)

    def _blend(self, current: Tensor, previous: Tensor, motion: Motion) -> Tensor:
        """``current`` with ``previous`` (the last output) warped in where ``motion`` is
        reliable, weighted by ``temporal_strength``."""
        if previous.shape != current.shape:
            return current
        flow, valid = flow_to_device(motion.flow, motion.valid, current.shape[-2:], self.device)
        self.counters.blended += current.shape[0]
        return blend(current, warp(previous, flow), valid.mul_(self.options.temporal_strength))


def temporal_status(stylizer: TemporalStylizer | None) -> dict[str, Any]:
    """JSON-ready settings and counters of a stream's wrapper (``get-status``,
    ``list-streams``): ``mode``, ``keyframe_interval``, ``work_size`` and every counter of
    :class:`~streamer.temporal.state.TemporalCounters` (zeros without a wrapper)."""
    options = TemporalOptions() if stylizer is None else stylizer.options
    counters = TemporalCounters() if stylizer is None else stylizer.counters
    work = options.work_size
    return {
        "mode": options.temporal,
        "keyframe_interval": options.keyframe_interval,
        "work_size": None if work is None else format_size(work),
        **counters.to_dict(),
    }


__all__ = ["TemporalStylizer", "temporal_status"]
