"""Regions as the commands take them: specs checked up front, then attached to a stylizer.

A :class:`RegionSpec` names a style image (optionally a style mask selecting part of it) and
where its content mask comes from (``mask=`` a picture, mask video or frames, or ``key=`` a
chroma-key colour). A :class:`RegionPlan` is the command's list of regions plus what uncovered
positions get. :meth:`RegionPlan.check` reads every mask and style file before a model loads or
an output is created, so a bad mask is one error line and nothing is written;
:meth:`RegionPlan.attach` wraps a :class:`~adaattn_video.stylizer.FrameStylizer` into a
:class:`~adaattn_video.region_stylizer.RegionStylizer`. The stylizer of ``live`` and of each
``serve`` stream, whose regions can be set and cleared while it runs, is
:class:`~streamer.regions.switch.RegionSwitch`.

A region is written ``KEY=VALUE`` pairs separated by commas (``--region``) or as a mapping (a
YAML list, a control request); :func:`parse_regions` reads both. Keys: ``style`` (required),
``mask`` (picture / mask video / frames) or ``key`` (chroma-key colour), ``tolerance``,
``softness``, ``invert``, ``style_mask``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from adaattn_video.errors import ImageReadError
from adaattn_video.image_io import read_image
from adaattn_video.masked_attention import UNCOVERED, RegionError, Uncovered
from adaattn_video.region_stylizer import (
    MaskFunction,
    Region,
    RegionStylizer,
    encode_region_style,
    region_name,
)
from adaattn_video.stylizer import FrameStylizer
from streamer.regions.masks import (
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

    @property
    def paths(self) -> tuple[str, ...]:
        """The files this region reads (style, style mask, mask)."""
        return tuple(p for p in (self.style, self.style_mask, self.mask) if p is not None)

    def absolute(self) -> RegionSpec:
        """This region with its file paths made absolute (for a server with its own cwd)."""

        def resolve(path: str | None) -> str | None:
            return None if path is None else str(Path(path).expanduser().resolve())

        return replace(
            self, style=resolve(self.style), mask=resolve(self.mask),
            style_mask=resolve(self.style_mask),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The keys a user would write (those not at their default), JSON-ready."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items() if v is not None and v != defaults[k]}


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
                    refuse_sequences((spec,), "this command")
                if input_uri is None:
                    count_frames(spec.mask)
                else:
                    check_same_length(spec.mask, input_uri)
            else:
                StillMask(spec.mask, spec.invert)

    def build(
        self,
        stylizer: FrameStylizer,
        *,
        start_s: float = 0.0,
        duration_s: float | None = None,
        fps: float | None = None,
    ) -> list[Region]:
        """Encode every region's style with ``stylizer``'s model and open its mask (mask
        sequences with the input's ``start_s``, ``duration_s`` and ``fps``)."""
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
        return regions

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
        regions = self.build(stylizer, start_s=start_s, duration_s=duration_s, fps=fps)
        return RegionStylizer(stylizer, regions, uncovered=self.uncovered)

    def as_dict(self) -> dict[str, Any]:
        """``{"regions": [...], "uncovered": ...}``, JSON-ready (``get-status``)."""
        return {"regions": [spec.as_dict() for spec in self.regions], "uncovered": self.uncovered}

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


# -- parsing: ``style=...,mask=...`` strings and mappings ---------------------------------------
_KINDS: dict[str, type] = {
    "style": str,
    "mask": str,
    "key": str,
    "tolerance": float,
    "softness": float,
    "invert": bool,
    "style_mask": str,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _value(name: str, raw: Any, where: str) -> Any:
    kind = _KINDS[name]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise RegionError(f"{where}: {name} must be 1/0 or true/false, got {raw!r}")
    if kind is float:
        try:
            if isinstance(raw, bool):
                raise TypeError
            number = float(raw)
        except (TypeError, ValueError, OverflowError) as err:
            raise RegionError(f"{where}: {name} must be a number, got {raw!r}") from err
        if number != number or number in (float("inf"), float("-inf")):
            raise RegionError(f"{where}: {name} must be a finite number, got {raw!r}")
        return number
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool) or str(raw) == "":
        raise RegionError(f"{where}: {name} must be a file name or text, got {raw!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in str(raw)):  # every message stays one line
        raise RegionError(f"{where}: {name} must not contain control characters, got {raw!r}")
    return str(raw)


def region_from_mapping(mapping: Mapping[Any, Any], where: str) -> RegionSpec:
    """``{style: ..., mask: ..., ...}`` -> a checked :class:`RegionSpec`."""
    values: dict[str, Any] = {}
    for raw_key, raw in mapping.items():
        name = str(raw_key).strip().replace("-", "_")
        if name not in _KINDS:
            raise RegionError(f"{where}: unknown key {raw_key!r}; known keys: {', '.join(_KINDS)}")
        values[name] = _value(name, raw, where)
    return RegionSpec(**values)


def parse_region(text: str) -> RegionSpec:
    """``style=wave.jpg,mask=person.png,invert=1`` -> a checked :class:`RegionSpec`."""
    where = f"--region {text!r}"
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise RegionError(
                f"{where}: expected KEY=VALUE pairs separated by commas "
                f"(e.g. style=wave.jpg,mask=person.png), got {part!r}"
            )
        if name.strip() in mapping:
            raise RegionError(f"{where}: {name.strip()} is given twice")
        mapping[name.strip()] = value.strip()
    if not mapping:
        raise RegionError(f"{where}: empty region; expected style=IMAGE,mask=FILE")
    return region_from_mapping(mapping, where)


def parse_regions(value: Any) -> tuple[RegionSpec, ...]:
    """Flag strings, or a YAML list of strings / mappings (or one of them) -> specs."""
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    specs = []
    for index, item in enumerate(items):
        if isinstance(item, RegionSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(parse_region(item))
        elif isinstance(item, Mapping):
            specs.append(region_from_mapping(item, f"region {index + 1}"))
        else:
            raise RegionError(
                f"region {index + 1}: expected style=...,mask=... or a mapping, got {item!r}"
            )
    return tuple(specs)


def refuse_sequences(specs: tuple[RegionSpec, ...], what: str) -> None:
    """Live streams drop frames, so a mask that must follow the input frame by frame cannot
    be used there: refuse mask videos and frame folders by their name (no file is read)."""
    for spec in specs:
        if spec.is_sequence:
            raise MaskError(
                f"mask {spec.mask} is a sequence (a video or frames); {what} takes a still "
                "picture or a chroma key (a live source drops frames, so masks would fall out "
                "of step)"
            )
