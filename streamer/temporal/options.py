"""The temporal settings every video command will take (flattened into its config).

Three levers, combinable:

* ``temporal``: ``off`` (each frame alone), ``stats`` (a motion-gated moving average of the
  AdaAttN statistics, :mod:`adaattn_video.temporal_stats`; near-zero cost) or ``flow`` (the
  previous output, warped by optical flow, blended into the current one where the flow is
  trustworthy).
* ``keyframe_interval`` N: stylize every N-th frame, warp the last stylized frame for the others
  (a frame whose flow is unreliable is stylized instead).
* ``work_size``: stylize at a smaller size, bring the result to the output size with a guided
  upsampling steered by the full-resolution frame (edges stay sharp).

Field names are unique across every command's config (``temporal_*`` for the finer knobs), so
the dataclass can be flattened (``configkit.convert.option(flatten=True)``) anywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from adaattn_video.settings import check_size, format_size, parse_size
from configkit.convert import option
from configkit.errors import StylestreamError

TemporalMode = Literal["off", "stats", "flow"]
MODES: tuple[str, ...] = ("off", "stats", "flow")
FLOW_PRESETS: tuple[str, ...] = ("ultrafast", "fast", "medium")  # streamer.temporal.flow.PRESETS


class TemporalSettingError(StylestreamError, ValueError):
    """A temporal setting is out of range (one line, exit 2 on the command line)."""


def _in_range(name: str, value: float, low: float, high: float, *, open_high: bool = False) -> None:
    if not (low <= value < high if open_high else low <= value <= high):
        bracket = ")" if open_high else "]"
        raise TemporalSettingError(f"{name} must be in [{low}, {high}{bracket}, got {value}")


@dataclass(frozen=True)
class TemporalOptions:
    """How consecutive frames of one stream are tied together (see the module docstring)."""

    # str, not the TemporalMode Literal: a bad value is then one error line from the check
    # below, not argparse's usage text.
    temporal: str = option(
        "off", "temporal stability: off (each frame alone), stats (smooth the attention "
        "statistics where nothing moved; ~free) or flow (blend the motion-compensated previous "
        "output; a few ms per frame)", metavar="off|stats|flow",
    )  # fmt: skip
    keyframe_interval: int = option(
        1, "stylize every N-th frame and warp the last stylized one for the others (1 = every "
        "frame); frames with unreliable motion are stylized anyway",
        metavar="N",
    )  # fmt: skip
    work_size: int | tuple[int, int] | None = option(
        None, "stylize at this smaller size (N = longer side, or WxH) and upsample edge-aware "
        "to the output size (default: full size)",
        metavar="N|WxH", parse=parse_size, format=format_size,
    )  # fmt: skip
    temporal_strength: float = option(
        0.95, "flow: weight of the warped previous output where the motion is reliable, in "
        "[0, 1) (higher = steadier, more trailing)",
    )  # fmt: skip
    temporal_stats_momentum: float = option(
        0.6, "stats: weight of the previous frame's statistics where nothing moved, in [0, 1)"
    )
    temporal_stats_threshold: float = option(
        0.04, "stats: luma change (0-1, at the statistics' resolution) above which the current "
        "frame's statistics win",
    )  # fmt: skip
    temporal_flow_size: int = option(
        480, "longer side (pixels) the optical flow is computed at (smaller = faster)"
    )
    temporal_flow_preset: str = option(
        "medium", "DIS optical flow preset: ultrafast, fast or medium (finer = more exact "
        "motion, steadier flow blending; slower)", metavar="ultrafast|fast|medium",
    )  # fmt: skip
    temporal_min_valid: float = option(
        0.7, "keyframes: stylize a frame anyway when less than this fraction of it has "
        "reliable motion",
    )  # fmt: skip
    temporal_cut_threshold: float = option(
        0.5, "scene cut (state reset) when the luma histograms of consecutive frames differ "
        "by more than this (0-2, L1 distance)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.temporal not in MODES:
            raise TemporalSettingError(
                f"temporal must be one of {', '.join(MODES)}, got {self.temporal!r}"
            )
        if (
            not isinstance(self.keyframe_interval, int)
            or isinstance(self.keyframe_interval, bool)
            or self.keyframe_interval < 1
        ):
            raise TemporalSettingError(
                f"keyframe_interval must be an integer >= 1, got {self.keyframe_interval!r}"
            )
        try:
            check_size(self.work_size)
        except StylestreamError as err:
            raise TemporalSettingError(f"work_size: {err}") from err
        _in_range("temporal_strength", self.temporal_strength, 0.0, 1.0, open_high=True)
        _in_range("temporal_stats_momentum", self.temporal_stats_momentum, 0.0, 1.0, open_high=True)
        if self.temporal_stats_threshold <= 0:
            raise TemporalSettingError(
                f"temporal_stats_threshold must be > 0, got {self.temporal_stats_threshold}"
            )
        if self.temporal_flow_size < 32:
            raise TemporalSettingError(
                f"temporal_flow_size must be >= 32 pixels, got {self.temporal_flow_size}"
            )
        if self.temporal_flow_preset not in FLOW_PRESETS:
            raise TemporalSettingError(
                f"temporal_flow_preset must be one of {', '.join(FLOW_PRESETS)}, "
                f"got {self.temporal_flow_preset!r}"
            )
        _in_range("temporal_min_valid", self.temporal_min_valid, 0.0, 1.0)
        _in_range("temporal_cut_threshold", self.temporal_cut_threshold, 0.0, 2.0)

    @property
    def active(self) -> bool:
        """False when every lever is at its default (the wrapper is then a plain pass-through)."""
        return self.temporal != "off" or self.keyframe_interval > 1 or self.work_size is not None

    @property
    def needs_flow(self) -> bool:
        return self.temporal == "flow" or self.keyframe_interval > 1

    def replace(self, **changes: Any) -> TemporalOptions:
        return dataclasses.replace(self, **changes)


# Named settings, from benchmarks/temporal_modes.py (640x360 pan + cut, untrained video model,
# CPU; docs/temporal.md): "steady" is the default flow blend (strength 0.95, DIS "medium" at
# 480 px). "fast" trades exactness of the motion for speed: the DIS "fast" preset at 320 px
# (a few ms per frame on a CPU core; the stylized frames are half size and half of them warped).
PRESETS: dict[str, dict[str, Any]] = {
    "steady": {"temporal": "flow"},
    "fast": {
        "temporal": "flow",
        "keyframe_interval": 2,
        "work_size": 384,
        "temporal_flow_size": 320,
        "temporal_flow_preset": "fast",
    },
}


def preset(name: str, **changes: Any) -> TemporalOptions:
    """The :class:`TemporalOptions` of a named preset (``steady``, ``fast``), with ``changes``."""
    if name not in PRESETS:
        raise TemporalSettingError(
            f"unknown temporal preset {name!r}; known: {', '.join(sorted(PRESETS))}"
        )
    return TemporalOptions(**{**PRESETS[name], **changes})


PRESET_KEY = "preset"  # the flag / YAML key of a preset (``--preset fast``)


def check_preset(name: str | None) -> None:
    if name is not None and name not in PRESETS:
        raise TemporalSettingError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")


def preset_option() -> Any:
    """The ``--preset steady|fast`` field of a command's options (``live``, ``studio``)."""
    return option(
        None, "temporal preset: steady (flow) or fast (flow, keyframe interval 2, work size "
        "384, a coarser flow); temporal flags given too win over it",
        flag=PRESET_KEY, metavar="steady|fast", check=check_preset,
    )  # fmt: skip


def with_preset(data: dict[str, Any]) -> dict[str, Any]:
    """A command's ``prepare`` step: a ``preset`` key fills in the temporal keys the flags
    and the YAML file did not give (so an explicit ``--keyframe-interval 1`` beats ``fast``)."""
    name = data.get(PRESET_KEY)
    if name is None:
        return data
    check_preset(name)
    return {**PRESETS[name], **data}


__all__ = [
    "FLOW_PRESETS",
    "MODES",
    "PRESETS",
    "PRESET_KEY",
    "TemporalMode",
    "TemporalOptions",
    "TemporalSettingError",
    "check_preset",
    "preset",
    "preset_option",
    "with_preset",
]
