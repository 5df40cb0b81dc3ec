"""Regions that change while a stream runs: :class:`RegionSwitch`, the stylizer of ``live`` and
of every ``serve`` stream, and :class:`RegionState`, what one batch is stylized with.

Regions are set from the control thread while another thread stylizes; a new
:class:`~adaattn_video.region_stylizer.RegionStylizer` is swapped in as one reference, so a batch
never sees half a change. The specs it takes are :class:`~streamer.regions.specs.RegionPlan` s.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from adaattn_video.model import StyleTransferModel
from adaattn_video.region_stylizer import RegionStylizer
from adaattn_video.stylizer import ActiveStyle, FrameStylizer, StylizerConfig
from streamer.regions.specs import RegionPlan

if TYPE_CHECKING:
    from streamer.temporal.options import TemporalOptions
    from streamer.temporal.stylizer import TemporalStylizer


@dataclass(frozen=True, eq=False)
class RegionState:
    """What one batch is stylized with: the default style and the regions (or None)."""

    style: ActiveStyle
    regional: RegionStylizer | None
    plan: RegionPlan | None

    @property
    def style_id(self) -> str:
        """The frame label: the style id, with ``|regions:a,b`` when regions apply."""
        if self.regional is None:
            return self.style.style_id
        names = ",".join(region.name for region in self.regional.regions)
        return f"{self.style.style_id}|regions:{names}"

    def same(self, other: RegionState) -> bool:
        """Nothing was replaced in between (styles and regions are swapped whole, never
        mutated, so identity is equality)."""
        return self.style is other.style and self.regional is other.regional


class RegionSwitch:
    """A :class:`FrameStylizer` whose regions can be set (:meth:`apply`) and cleared
    (:meth:`clear`) from any thread while another stylizes: the stylizer of ``live`` and of
    every ``serve`` stream.

    Each :meth:`apply` encodes the region styles and opens the masks in the CALLER's thread
    (the control thread), then swaps in a new :class:`RegionStylizer` as one reference, so the
    stylizing thread never waits and a batch never sees half a change. Without regions frames
    go straight to the plain stylizer. The default style, ``alpha``, ``config``, ``device``,
    ``model`` and ``pad`` are the plain stylizer's. It is the
    :class:`~streamer.zeromq.control.targets.StyleTarget` of the control commands.

    :meth:`use_temporal` gives the stream a memory (a
    :class:`~streamer.temporal.stylizer.TemporalStylizer` around whichever stylizer a batch
    uses); a style, alpha or region change resets it, and so does a change of the value a
    ``watch`` callable returns (e.g. the source's outage and reconnect counts).
    """

    def __init__(self, plain: FrameStylizer, plan: RegionPlan | None = None) -> None:
        self.plain = plain
        self._lock = threading.Lock()
        self._regional: tuple[RegionStylizer, RegionPlan] | None = None
        self.temporal: TemporalStylizer | None = None
        if plan is not None:
            self.apply(plan)

    def use_temporal(self, options: TemporalOptions, watch: Any = None) -> None:
        """Tie consecutive frames together with ``options`` (nothing when they are all off).
        ``watch``: a callable read before each batch; a new value resets the state."""
        from streamer.temporal.stylizer import TemporalStylizer

        if options.work_size is not None and self.has_regions:
            raise_work_size_with_regions()
        self.temporal = TemporalStylizer(self.plain, options, watch=watch)

    def _reset_temporal(self) -> None:
        if self.temporal is not None:
            self.temporal.reset()

    def temporal_status(self) -> dict[str, Any]:
        """``{"temporal": {"mode", "keyframe_interval", "work_size", counters...}}`` (mode
        ``off`` and zero counters without :meth:`use_temporal`)."""
        from streamer.temporal.stylizer import temporal_status

        return {"temporal": temporal_status(self.temporal)}

    @property
    def alpha(self) -> float:
        return self.plain.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.plain.alpha = value
        self._reset_temporal()

    @property
    def config(self) -> StylizerConfig:
        return self.plain.config

    @property
    def device(self) -> torch.device:
        return self.plain.device

    @property
    def model(self) -> StyleTransferModel:
        return self.plain.model

    @property
    def style(self) -> ActiveStyle:
        """The default style (replaced whole by :meth:`set_style`, never mutated)."""
        return self.plain.style

    def set_style(
        self, styles: Sequence[str | Path], weights: Sequence[float] | None = None
    ) -> ActiveStyle:
        """Encode and switch the default style (the regions keep theirs); resets the temporal
        state."""
        active = self.plain.set_style(list(styles), weights)
        self._reset_temporal()
        return active

    def pad(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        return self.plain.pad(images)

    def check_style_memory(self, styles: Sequence[str]) -> None:
        """Refuse styles whose encoding would not fit in this stylizer's device memory
        (:class:`~adaattn_video.resources.MemoryLimitError`)."""
        from adaattn_video.resources import check_stylize_memory

        check_stylize_memory(
            self.model.config,
            None,
            precision=self.config.precision,
            device=str(self.device),
            styles=styles,
            style_size=self.config.style_size,
        )

    def apply(self, plan: RegionPlan) -> None:
        """Check ``plan``'s files (still masks and chroma keys only), encode its styles, then
        swap it in. A bad plan raises and changes nothing."""
        plan.check(sequences=False)
        if self.temporal is not None and self.temporal.options.work_size is not None:
            raise_work_size_with_regions()
        regional = RegionStylizer(self.plain, plan.build(self.plain), uncovered=plan.uncovered)
        with self._lock:
            self._regional = (regional, plan)
        self._reset_temporal()

    def clear(self) -> None:
        """Back to the plain style (from the next batch on)."""
        with self._lock:
            self._regional = None
        self._reset_temporal()

    def state(self) -> RegionState:
        current = self._regional  # one read: the pair is replaced whole
        regional, plan = current if current is not None else (None, None)
        return RegionState(self.plain.style, regional, plan)

    @property
    def has_regions(self) -> bool:
        return self._regional is not None

    @property
    def style_id(self) -> str:
        return self.state().style_id

    def regions_status(self) -> dict[str, Any]:
        """``{"regions": [...], "uncovered": ...}`` of the current plan (empty: none)."""
        plan = self.state().plan
        return {"regions": [], "uncovered": None} if plan is None else plan.as_dict()

    def stylize_labelled(self, frames: Tensor) -> tuple[Tensor, str, int]:
        """(B, H, W, 3) uint8 -> (stylized (B, H', W', 3) uint8 on the device, the label of
        exactly what it was stylized with, extra model calls). A switch landing during the call
        (then it is not known which style the batch got) makes it stylize the batch again."""
        retries = 0
        while True:
            before = self.state()
            stylizer = before.regional if before.regional is not None else self.plain
            out = self._through_temporal(stylizer, frames)
            if self.state().same(before):
                return out, before.style_id, retries
            retries += 1

    def _current(self) -> FrameStylizer | RegionStylizer:
        current = self._regional
        return self.plain if current is None else current[0]

    def _through_temporal(self, stylizer: Any, frames: Tensor) -> Tensor:
        """``stylizer`` on ``frames``, through the temporal memory when there is one (its
        inner stylizer follows the regions: plain or regional, one state either way)."""
        temporal = self.temporal
        if temporal is None:
            return stylizer.stylize_uint8(frames)
        temporal.inner = stylizer
        return temporal.stylize_uint8(frames)

    def stylize_uint8(self, frames: Tensor) -> Tensor:
        return self._through_temporal(self._current(), frames)

    def __call__(self, frames: Any) -> Any:
        """(H, W, 3) or (B, H, W, 3) uint8 numpy/torch -> the same type and layout."""
        if self.temporal is None:
            return self._current()(frames)
        self.temporal.inner = self._current()
        return self.temporal(frames)


def raise_work_size_with_regions() -> None:
    """Regions' masks are made at the frame's size: ``work_size`` cannot shrink those frames."""
    from streamer.temporal.options import TemporalSettingError

    raise TemporalSettingError(
        "work_size cannot be combined with regions (their masks need full-size frames); "
        "leave --work-size out or clear the regions"
    )
