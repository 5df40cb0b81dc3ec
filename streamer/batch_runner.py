"""Stylizing batches of frames, with host<->device transfers overlapped on CUDA.

:class:`BatchRunner` is the pipeline's stylize step (and what ``bench render`` times stage by
stage). On CUDA, batches go through pinned host buffers, uploads run on a side stream and
results come back with asynchronous copies collected one batch later while frames keep coming,
so transfers overlap compute; a batch with no frame behind it is returned at once (latency).

The stylizer is a :class:`streamer.frames.Stylizer` (``stylize_uint8((B, H, W, 3) uint8 tensor)
-> (B, H', W', 3) uint8 tensor``, ``device``, ``style_id``); :class:`ArrayStylizer` makes one of
a plain numpy function (tests, simple filters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from streamer.frames import Frame, Stylizer


class ArrayStylizer:
    """A :class:`~streamer.frames.Stylizer` from a numpy function ``(B, H, W, 3) uint8 ->
    (B, H', W', 3) uint8`` on the CPU (tests, filters that need no model)."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], style_id: str | None = None):
        self.function = function
        self.device = torch.device("cpu")
        self.style_id = style_id

    def stylize_uint8(self, frames: torch.Tensor) -> torch.Tensor:
        out = np.asarray(self.function(frames.cpu().numpy()))
        return torch.from_numpy(np.ascontiguousarray(out))


class _Launch:
    """A batch started on the device: :meth:`result` waits for it -> ((B, H', W', 3) uint8 numpy,
    style id)."""

    def __init__(self, result: Callable[[], tuple[np.ndarray, str | None]]) -> None:
        self.result = result


class BatchRunner:
    """Runs a stylizer on batches of frames and hands back finished frames.

    Every batch is *launched* (:meth:`_launch`) and its result *collected* later. On CUDA a
    launch copies the batch into a pinned host buffer, uploads it on a side stream, stylizes it
    and copies the result back asynchronously; collecting waits for that copy, so the next
    batch's upload and compute can overlap this one's download. On other devices a launch is
    the whole call (``overlap`` False).

    :meth:`submit` may therefore DEFER a batch: with ``overlap`` it returns the PREVIOUS batch
    and keeps this one in flight, but only while ``more_waiting`` says another frame is already
    queued. With nothing waiting (a live source between frames, an outage) the batch is
    collected at once: deferring it would hold frame N until frame N + 1 arrives, a whole
    source interval (or an outage) of extra latency for no overlap. :meth:`flush` returns what
    is still in flight. The deferral logic is the same on every device; only the launch differs.
    """

    def __init__(self, stylizer: Stylizer, *, overlap: bool | None = None) -> None:
        """``overlap``: defer batches as on CUDA (default: on CUDA only; tests force it on the
        CPU to check the deferral logic)."""
        self.stylizer = stylizer
        self.device = torch.device(stylizer.device)
        self.cuda = self.device.type == "cuda" and torch.cuda.is_available()
        self.overlap = self.cuda if overlap is None else overlap
        self._pending: tuple[list[Frame], _Launch] | None = None
        if self.cuda:
            self._copy_stream = torch.cuda.Stream(self.device)
            self._slots: list[dict[str, Any]] = [{}, {}]
            self._slot = 0

    def submit(self, frames: Sequence[Frame], *, more_waiting: bool = True) -> list[Frame]:
        """Stylize ``frames`` (one size); returns the frames finished now, in order: the
        previous batch, and this one unless it was deferred (see the class doc).
        ``more_waiting``: whether another frame is already queued behind this batch."""
        images = np.stack([f.image for f in frames])
        launch = self._launch_cuda(images) if self.cuda else self._launch_sync(images)
        finished = self.flush()
        if self.overlap and more_waiting:
            self._pending = (list(frames), launch)
        else:
            finished += _finish(list(frames), launch)
        return finished

    def flush(self) -> list[Frame]:
        """The batch still in flight, finished (empty when none)."""
        if self._pending is None:
            return []
        frames, launch = self._pending
        self._pending = None
        return _finish(frames, launch)

    @property
    def in_flight(self) -> int:
        """Frames launched but not yet returned."""
        return 0 if self._pending is None else len(self._pending[0])

    def _launch_sync(self, images: np.ndarray) -> _Launch:
        out = self.stylizer.stylize_uint8(torch.from_numpy(images)).cpu().numpy()
        style_id = _style_id(self.stylizer)
        return _Launch(lambda: (out, style_id))

    # -- CUDA -------------------------------------------------------------------------------
    def _pinned(self, slot: dict[str, Any], key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A pinned uint8 buffer of at least ``shape`` (reallocated when frames change size)."""
        buf = slot.get(key)
        if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            slot[key] = buf
        return buf[: shape[0]]

    def _launch_cuda(self, images: np.ndarray) -> _Launch:
        slot = self._slots[self._slot]
        self._slot ^= 1
        if slot.get("uploaded") is not None:
            slot["uploaded"].synchronize()  # this slot's input buffer is free again
        host_in = self._pinned(slot, "in", images.shape)
        host_in.copy_(torch.from_numpy(images))
        with torch.cuda.stream(self._copy_stream):
            device_in = host_in.to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self._copy_stream)
        slot["uploaded"] = uploaded
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(uploaded)
        device_in.record_stream(compute)
        device_out = self.stylizer.stylize_uint8(device_in)
        style_id = _style_id(self.stylizer)
        host_out = self._pinned(slot, "out", tuple(device_out.shape))
        host_out.copy_(device_out, non_blocking=True)
        done = torch.cuda.Event()
        done.record(compute)

        def result() -> tuple[np.ndarray, str | None]:
            done.synchronize()
            # copy out of the pinned buffer: it is reused two batches later
            return host_out.numpy().copy(), style_id

        return _Launch(result)


def _finish(frames: list[Frame], launch: _Launch) -> list[Frame]:
    out, style_id = launch.result()
    _check_output(out, len(frames))
    return [dataclasses.replace(f, image=out[i], style_id=style_id) for i, f in enumerate(frames)]


def _style_id(stylizer: Stylizer) -> str | None:
    """The style the batch just stylized got (frames carry it: live switches). Exact when the
    stylizer says so (``streamer.live.SwitchSafeStylizer``); a plain FrameStylizer is read right
    after the call, which is exact unless the style changed during it."""
    try:
        return stylizer.style_id
    except RuntimeError:  # FrameStylizer without a style (cannot happen after a call)
        return None


def _check_output(out: np.ndarray, count: int) -> None:
    if out.dtype != np.uint8 or out.ndim != 4 or out.shape[0] != count or out.shape[-1] != 3:
        raise ValueError(
            f"stylizer must return ({count}, H, W, 3) uint8 frames, got {out.shape} {out.dtype}"
        )
