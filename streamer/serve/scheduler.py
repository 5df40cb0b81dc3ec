"""The one stylizing loop of ``stylestream serve``: fair rounds, one model call per size group.

Each round:

1. Every stream with a waiting frame contributes exactly ONE frame, its newest (older waiting
   frames are dropped and counted by the stream). Streams are taken least-recently-served
   first, at most ``max_batch`` per round; so a 60 fps stream gets one slot per round like a
   5 fps one and cannot starve it, and with more ready streams than ``max_batch`` the ones left
   out go first next round.
2. The frames are grouped by the size they are stylized at (the stream's ``size`` for the
   frame's size, :func:`~adaattn_video.settings.output_size`): frames of one size are one batch, i.e. one model call
   (:func:`~adaattn_video.mixed_batch.stylize_per_frame`, each frame with its stream's style sums
   and alpha). Different sizes are different calls in the same round (convolutions need one
   shape per batch; padding small frames up to the largest would waste compute and change the
   replicate-padded borders).
3. Each stylized frame is labelled with the style it was really stylized with (the stream's
   style object is read once, before the call) and handed to its stream's writer.

Streams with regions (``region:`` or ``set-regions``) are not in the shared batch: each of their
frames is one model call of its own, through the stream's
:class:`~streamer.regions.switch.RegionSwitch` (masks, per-region style sums), in the same round after
the batches. Their label names the regions too (``STYLE|regions:A,B``); a switch that lands
during the call makes it stylize the frame again, so the label is exact. Streams with temporal
settings on (``temporal: stats|flow``, ``keyframe_interval`` > 1, ``work_size``) go alone the
same way, through their own :class:`~streamer.temporal.stylizer.TemporalStylizer` (inside the
stream's RegionSwitch): its state (previous output, keyframe, statistics) belongs to that
stream only, its flow and warps are per stream anyway, and a warped (keyframe) frame costs no
model call at all. Temporal-off streams keep sharing the batch.

A failing call is logged and counted; its frames are lost, the loop goes on. Out of memory
(CUDA or MPS) is handled so that it does not spread: the allocator's cache is freed (else every
later round fails too), a batch of several streams is retried one frame at a time (so only the
stream whose frame does not fit loses it), and each stream that lost frames to it says so once
in the log and keeps saying so in its status (``error``: how many frames).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from adaattn_video.device_memory import free_cached_memory, is_out_of_memory
from adaattn_video.mixed_batch import FrameStyle, stylize_per_frame
from adaattn_video.model import StyleTransferModel
from adaattn_video.stylizer import crop_output, resize_images
from streamer.frames import Frame
from streamer.serve.stream import StreamRuntime

log = logging.getLogger(__name__)


@dataclass
class SchedulerStats:
    rounds: int = 0
    batches: int = 0
    frames: int = 0
    failed_batches: int = 0
    out_of_memory: int = 0  # model calls that ran out of memory (retries included)
    model_s: float = 0.0
    largest_batch: int = 0


class Scheduler:
    """Runs rounds until ``stop()``; ``streams`` returns the current streams (any thread may
    add or remove streams between rounds)."""

    def __init__(
        self,
        model: StyleTransferModel,
        device: torch.device,
        streams: Callable[[], Sequence[StreamRuntime]],
        *,
        max_batch: int = 8,
        wake: threading.Event | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self._streams = streams
        self.max_batch = max_batch
        self.wake = wake or threading.Event()
        self.stats = SchedulerStats()
        self._last_served: dict[str, float] = {}
        self._style_cache: dict[str, tuple[object, float, FrameStyle]] = {}
        self._oom_lost: dict[str, int] = {}  # frames each stream lost to out-of-memory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread -----------------------------------------------------------------------------
    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self.run, name="serve-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def run(self) -> None:
        while not self._stop.is_set():
            if not self.run_round():
                self.wake.wait(0.05)
                self.wake.clear()

    # -- one round --------------------------------------------------------------------------
    def run_round(self) -> int:
        """Take one frame from each ready stream (fairly), stylize, deliver; returns frames."""
        streams = sorted(self._streams(), key=lambda s: self._last_served.get(s.name, 0.0))
        taken: list[tuple[StreamRuntime, Frame]] = []
        for stream in streams:
            if len(taken) >= self.max_batch:
                break
            frame = stream.take_newest()
            if frame is not None:
                taken.append((stream, frame))
        if not taken:
            return 0
        now = time.monotonic()
        for stream, _ in taken:
            self._last_served[stream.name] = now
        groups: dict[tuple[int, int], list[tuple[StreamRuntime, Frame]]] = {}
        alone = [(stream, frame) for stream, frame in taken if stream.stylized_alone]
        for stream, frame in taken:
            if any(stream is other for other, _ in alone):
                continue
            size = stream.stylizer.config.output_size(*frame.image.shape[:2])
            groups.setdefault((int(size[0]), int(size[1])), []).append((stream, frame))
        for size, members in groups.items():
            self._stylize_group(size, members)
        for stream, frame in alone:
            self._stylize_alone(stream, frame)
        self.stats.rounds += 1
        return len(taken)

    def _frame_style(self, stream: StreamRuntime) -> tuple[FrameStyle, str]:
        """The stream's current style as a :class:`FrameStyle` (cached while unchanged, so
        frames of streams that keep their style share one object) and its id."""
        active = stream.stylizer.style  # replaced as a whole on set-style, never mutated
        alpha = stream.stylizer.alpha
        cached = self._style_cache.get(stream.name)
        if cached is None or cached[0] is not active or cached[1] != alpha:
            cached = (active, alpha, FrameStyle(active.features, active.weights, alpha))
            self._style_cache[stream.name] = cached
        return cached[2], active.style_id

    def _run_group(
        self, size: tuple[int, int], members: list[tuple[StreamRuntime, Frame]]
    ) -> tuple[Any, list[str]]:
        """Stack (resizing where needed), pad, one model call, crop -> ((B, H, W, 3) uint8
        numpy, style ids)."""
        styles: list[FrameStyle] = []
        ids: list[str] = []
        images = []
        for stream, frame in members:
            style, style_id = self._frame_style(stream)
            styles.append(style)
            ids.append(style_id)
            image = torch.from_numpy(frame.image).to(self.device, non_blocking=True)
            image = image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            images.append(resize_images(image, size))
        content = torch.cat(images, dim=0)
        # Any member's stylizer pads the same way: they share the model.
        padded, (h, w) = members[0][0].stylizer.pad(content)
        out = stylize_per_frame(self.model, padded, styles)
        out = crop_output(out, (h, w)).mul_(255.0).round_()
        return out.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy(), ids

    def _stylize_group(
        self, size: tuple[int, int], members: list[tuple[StreamRuntime, Frame]]
    ) -> None:
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                pictures, ids = self._run_group(size, members)
        except Exception as err:
            if is_out_of_memory(err):
                self._out_of_memory(size, members)
                return
            self.stats.failed_batches += 1
            log.exception(
                "a batch of %d frame(s) at %dx%d failed; its frames are lost",
                len(members),
                size[1],
                size[0],
            )
            return
        self.stats.model_s += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.frames += len(members)
        self.stats.largest_batch = max(self.stats.largest_batch, len(members))
        for (stream, frame), picture, style_id in zip(members, pictures, ids, strict=True):
            stream.deliver(replace(frame, image=picture, style_id=style_id))

    def _stylize_alone(self, stream: StreamRuntime, frame: Frame) -> None:
        """One frame of a stream with regions or temporal state, in its own model call (see the
        module doc)."""
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                image = torch.from_numpy(frame.image).unsqueeze(0)
                out, style_id, _ = stream.stylizer.stylize_labelled(image)
                picture = out[0].cpu().numpy()
        except Exception as err:
            self.stats.failed_batches += 1
            if is_out_of_memory(err):
                self.stats.out_of_memory += 1
                free_cached_memory(self.device)
                self._report_lost(stream)
                return
            log.exception("stream %s: a frame with regions failed; it is lost", stream.name)
            return
        self.stats.model_s += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.frames += 1
        self.stats.largest_batch = max(self.stats.largest_batch, 1)
        stream.deliver(replace(frame, image=picture, style_id=style_id))

    # -- out of memory ----------------------------------------------------------------------
    def _out_of_memory(
        self, size: tuple[int, int], members: list[tuple[StreamRuntime, Frame]]
    ) -> None:
        """A batch ran out of memory: free the cache, then retry its frames one at a time
        (each alone may fit; one that does not loses only its own stream's frame)."""
        self.stats.out_of_memory += 1
        free_cached_memory(self.device)
        if len(members) > 1:
            log.warning(
                "a batch of %d frames at %dx%d ran out of memory; retrying frame by frame",
                len(members),
                size[1],
                size[0],
            )
            for member in members:
                self._stylize_group(size, [member])
            return
        self.stats.failed_batches += 1
        self._report_lost(members[0][0])

    def _report_lost(self, stream: StreamRuntime) -> None:
        """Count a frame ``stream`` lost to out-of-memory: logged once per stream, and kept in
        its status (``error``) unless that already holds another failure."""
        lost = self._oom_lost.get(stream.name, 0) + 1
        self._oom_lost[stream.name] = lost
        message = f"out of memory on {self.device}: {lost} frame(s) lost"
        if lost == 1:
            log.error("stream %s: %s (lower its size or the number of streams)", stream.name,
                      message)  # fmt: skip
        if stream.error is None or stream.error.startswith("out of memory"):
            stream.error = message

    def forget(self, name: str) -> None:
        """Drop what is remembered about a removed stream."""
        self._last_served.pop(name, None)
        self._style_cache.pop(name, None)
        self._oom_lost.pop(name, None)
