"""Regions as the commands take them: specs checked up front, then attached to a stylizer.

A :class:`RegionSpec` names a style image (optionally a style mask selecting part of it) and
where its content mask comes from (``mask=`` a picture, mask video or frames, or ``key=`` a
chroma-key colour). A :class:`RegionPlan` is the command's list of regions plus what uncovered
positions get. :meth:`RegionPlan.check` reads every mask and style file before a model loads or
an output is created, so a bad mask is one error line and nothing is written;
:meth:`RegionPlan.attach` wraps a :class:`~adaattn_video.stylizer.FrameStylizer` into a
:class:`~adaattn_video.region_stylizer.RegionStylizer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from adaattn_video.errors import ImageReadError
from adaattn_video.image_io import read_image
from adaattn_video.region_stylizer import (
    MaskFunction,
    Region,
    RegionStylizer,
    encode_region_style,
    region_name,
)
from adaattn_video.regions import UNCOVERED, RegionError, Uncovered
from adaattn_video.stylizer import FrameStylizer
from streamer.masks import (
    ChromaKeyMask,
    MaskError,
    SequenceMask,
    StillMask,
    check_same_length,
    count_frames,
    is_sequence,
    parse_key_colour,
    read_mask_image,
)


@dataclass(frozen=True)
class RegionSpec:
    """One region as a user gives it.

    Attributes:
        style: the region's style image.
        mask: a picture (white = region), a mask video, or numbered frames / a folder.
        key: a chroma-key colour (``green``, ``blue``, ``#RRGGBB``); the region is where the
            frame has it. Exactly one of ``mask`` and ``key``.
        tolerance / softness: key distance (CIELAB a*b*) fully inside / of the soft ramp.
        invert: swap inside and outside of the mask or key.
        style_mask: a picture selecting the part of the style image to use (white = use).
    """

    style: str | None = None
    mask: str | None = None
    key: str | None = None
    tolerance: float = 30.0
    softness: float = 10.0
    invert: bool = False
    style_mask: str | None = None

    def __post_init__(self) -> None:
        where = self.mask or (f"key={self.key}" if self.key else "?")
        if not self.style:
            raise RegionError(f"region {where}: has no style; give style=IMAGE")
        if (self.mask is None) == (self.key is None):
            raise RegionError(
                f"region style={self.style}: give exactly one of mask=FILE (a picture, mask "
                "video or frames) and key=COLOUR (chroma key)"
            )
        if self.key is not None:
            parse_key_colour(self.key)
        if self.tolerance < 0 or self.softness < 0:
            raise RegionError(
                f"region style={self.style}: tolerance and softness must be >= 0, got "
                f"{self.tolerance} and {self.softness}"
            )

    @property
    def is_sequence(self) -> bool:
        return self.mask is not None and is_sequence(self.mask)


@dataclass(frozen=True)
class RegionPlan:
    """A command's regions and what positions covered by no mask get (``style``, the default:
    the command's ``--style``, or the first region's whole style when there is none; or
    ``content``: the content itself)."""

    regions: tuple[RegionSpec, ...]
    uncovered: Uncovered = "style"

    def __post_init__(self) -> None:
        if not self.regions:
            raise RegionError("expected at least one --region")
        if self.uncovered not in UNCOVERED:
            raise RegionError(
                f"uncovered must be one of {', '.join(UNCOVERED)}, got {self.uncovered!r}"
            )

    @property
    def default_styles(self) -> tuple[str, ...]:
        """The style for uncovered positions when the command gives none: the first region's."""
        return (str(self.regions[0].style),)

    def check(self, *, input_uri: str | None = None, sequences: bool = True) -> None:
        """Read every style, style mask and still mask; count mask sequences against
        ``input_uri``. Raises one-line errors (nothing is loaded or written yet)."""
        for spec in self.regions:
            try:
                read_image(spec.style)
            except ImageReadError as err:
                raise RegionError(f"region style: {err}") from err
            if spec.style_mask is not None:
                _check_not_empty(read_mask_image(spec.style_mask), spec.style_mask, "style mask")
            if spec.mask is None:
                continue
            if spec.is_sequence:
                if not sequences:
                    raise MaskError(
                        f"mask {spec.mask} is a sequence (a video or frames); this command "
                        "takes a still picture or a chroma key"
                    )
                if input_uri is None:
                    count_frames(spec.mask)
                else:
                    check_same_length(spec.mask, input_uri)
            else:
                StillMask(spec.mask, spec.invert)

    def attach(
        self,
        stylizer: FrameStylizer,
        *,
        start_s: float = 0.0,
        duration_s: float | None = None,
        fps: float | None = None,
    ) -> RegionStylizer:
        """``stylizer`` with these regions (its own style is the default style). Mask
        sequences open with the input's ``start_s``, ``duration_s`` and ``fps``."""
        regions = []
        for index, spec in enumerate(self.regions):
            style_mask = None if spec.style_mask is None else read_mask_image(spec.style_mask)
            features = encode_region_style(stylizer, spec.style, style_mask)
            regions.append(
                Region(
                    features,
                    self._mask(spec, start_s, duration_s, fps),
                    region_name(spec.style, index),
                )
            )
        return RegionStylizer(stylizer, regions, uncovered=self.uncovered)

    @staticmethod
    def _mask(
        spec: RegionSpec, start_s: float, duration_s: float | None, fps: float | None
    ) -> MaskFunction:
        if spec.key is not None:
            return ChromaKeyMask(
                parse_key_colour(spec.key), spec.tolerance, spec.softness, spec.invert
            )
        assert spec.mask is not None
        if spec.is_sequence:
            return SequenceMask(
                spec.mask, invert=spec.invert, start_s=start_s, duration_s=duration_s, fps=fps
            )
        return StillMask(spec.mask, spec.invert)


def _check_not_empty(mask: Tensor, path: str | Path, what: str) -> None:
    if float(mask.max()) <= 0.0:
        raise MaskError(f"{what} {path} has no white pixel: it would select nothing")
