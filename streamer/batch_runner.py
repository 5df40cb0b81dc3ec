"""Stylizing batches of frames, with host<->device transfers overlapped on CUDA.

:class:`BatchRunner` is the pipeline's stylize step (and what ``bench render`` times stage by
stage). On CUDA, batches go through pinned host buffers, uploads run on a side stream and
results come back with asynchronous copies collected one batch later, so transfers overlap
compute.

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


# A CUDA batch in flight: frames, pinned output buffer, done event, style id.
_Pending = tuple[list[Frame], torch.Tensor, torch.cuda.Event, str | None]


class BatchRunner:
    """Runs a stylizer on batches of frames and hands back finished frames.

    CPU: :meth:`submit` returns the batch's frames, stylized.
    CUDA: the batch is copied into a pinned host buffer, uploaded on a side stream, stylized,
    and copied back into a pinned buffer asynchronously; :meth:`submit` returns the PREVIOUS
    batch (waiting for its copy), so the next batch's upload and compute overlap this one's
    download. :meth:`flush` returns what is still in flight.
    """

    def __init__(self, stylizer: Stylizer) -> None:
        self.stylizer = stylizer
        self.device = torch.device(stylizer.device)
        self.cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if self.cuda:
            self._copy_stream = torch.cuda.Stream(self.device)
            self._slots: list[dict[str, Any]] = [{}, {}]
            self._slot = 0
            self._pending: _Pending | None = None

    def submit(self, frames: Sequence[Frame]) -> list[Frame]:
        images = np.stack([f.image for f in frames])
        if self.cuda:
            return self._submit_cuda(list(frames), images)
        out = self.stylizer.stylize_uint8(torch.from_numpy(images)).cpu().numpy()
        _check_output(out, len(frames))
        style_id = _style_id(self.stylizer)
        return [
            dataclasses.replace(f, image=out[i], style_id=style_id) for i, f in enumerate(frames)
        ]

    def flush(self) -> list[Frame]:
        if not self.cuda or self._pending is None:
            return []
        return self._collect()

    # -- CUDA -------------------------------------------------------------------------------
    def _pinned(self, slot: dict[str, Any], key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A pinned uint8 buffer of at least ``shape`` (reallocated when frames change size)."""
        buf = slot.get(key)
        if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            slot[key] = buf
        return buf[: shape[0]]

    def _submit_cuda(self, frames: list[Frame], images: np.ndarray) -> list[Frame]:
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
        finished = self._collect() if self._pending is not None else []
        self._pending = (frames, host_out, done, style_id)
        return finished

    def _collect(self) -> list[Frame]:
        frames, host_out, done, style_id = self._pending
        self._pending = None
        done.synchronize()
        out = host_out.numpy()
        _check_output(out, len(frames))
        # copy out of the pinned buffer: it is reused two batches later
        return [
            dataclasses.replace(f, image=out[i].copy(), style_id=style_id)
            for i, f in enumerate(frames)
        ]


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
