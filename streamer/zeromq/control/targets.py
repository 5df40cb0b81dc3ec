"""What the ``live`` commands change (:class:`StyleTarget`: a
:class:`~streamer.regions.specs.RegionSwitch`) and the handlers that change it.

``set-style`` and ``set-regions`` read and encode their styles (and read their masks) HERE, in
the control thread; the target swaps the finished style or regions in as one reference, so the
stylizing thread never waits and never sees half a switch. A bad file raises and leaves the
target as it was. ``serve`` runs the same handlers on the stream a request names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from streamer.regions.specs import RegionPlan
from streamer.zeromq.control.protocol import (
    ClearRegions,
    GetStatus,
    Json,
    SetAlpha,
    SetRegions,
    SetStyle,
)
from streamer.zeromq.control.server import Handlers, Route


class StyleTarget(Protocol):
    """A stylizer whose style, alpha and regions change while another thread stylizes (the
    stylizer of ``live`` and of every ``serve`` stream)."""

    @property
    def style_id(self) -> str: ...

    @property
    def alpha(self) -> float: ...

    @alpha.setter
    def alpha(self, value: float) -> None: ...

    def set_style(self, styles: Sequence[str], weights: Sequence[float] | None = None) -> object:
        """Encode and switch to a style (mix); a bad file raises and changes nothing."""

    def apply(self, plan: RegionPlan) -> None:
        """Read the masks, encode the region styles, swap the regions in."""

    def clear(self) -> None:
        """Back to the plain style."""

    def regions_status(self) -> dict[str, Any]:
        """``{"regions": [...], "uncovered": ...}`` of the current regions."""

    def check_style_memory(self, styles: Sequence[str]) -> None:
        """Refuse styles whose encoding would not fit in memory (MemoryLimitError)."""

    def temporal_status(self) -> dict[str, Any]:
        """``{"temporal": {"mode": ..., counters...}}`` (set-style, set-alpha, set-regions and
        clear-regions reset the temporal state: ``resets`` counts them)."""


def _ms_since(started: float) -> float:
    return round(1000 * (time.perf_counter() - started), 1)


def set_style(target: StyleTarget, request: SetStyle) -> Json:
    target.check_style_memory(request.styles)
    started = time.perf_counter()
    target.set_style(list(request.styles), request.weights)
    return {"style_id": target.style_id, "encode_ms": _ms_since(started)}


def set_alpha(target: StyleTarget, request: SetAlpha) -> Json:
    target.alpha = request.alpha
    return {"alpha": target.alpha}


def set_regions(target: StyleTarget, request: SetRegions) -> Json:
    target.check_style_memory([str(spec.style) for spec in request.plan.regions])
    started = time.perf_counter()
    target.apply(request.plan)
    return {"style_id": target.style_id, **target.regions_status(), "encode_ms": _ms_since(started)}


def clear_regions(target: StyleTarget, request: ClearRegions) -> Json:
    started = time.perf_counter()
    target.clear()
    return {"style_id": target.style_id, **target.regions_status(), "encode_ms": _ms_since(started)}


def _temporal_status(target: StyleTarget) -> dict[str, Any]:
    """The target's temporal counters; a target without them (a test double) has none."""
    status = getattr(target, "temporal_status", None)
    return status() if status is not None else {}


def get_status(
    target: StyleTarget, status: Callable[[], Mapping[str, Any]] | None, request: GetStatus
) -> Json:
    """The style, alpha, regions and temporal counters, and ``status()``'s numbers (fps,
    latency, drops...)."""
    return {
        "style_id": target.style_id,
        "alpha": target.alpha,
        **target.regions_status(),
        **_temporal_status(target),
        **(status() if status is not None else {}),
    }


def live_handlers(
    target: StyleTarget, status: Callable[[], Mapping[str, Any]] | None = None
) -> Handlers:
    """``live``'s commands (:data:`~streamer.zeromq.control.protocol.COMMANDS`) on ``target``;
    ``status`` adds the stream's numbers to ``get-status``."""
    return Handlers(
        (
            Route(SetStyle, lambda request: set_style(target, request)),
            Route(SetAlpha, lambda request: set_alpha(target, request)),
            Route(SetRegions, lambda request: set_regions(target, request)),
            Route(ClearRegions, lambda request: clear_regions(target, request)),
            Route(GetStatus, lambda request: get_status(target, status, request)),
        )
    )
