"""Property-based tests (hypothesis): random and mutated YAML text, random mappings and random
option values never raise anything but the documented one-line errors.

Documented error types: :class:`~configkit.convert.ConfigError` (loader, converter),
:class:`~adaattn_video.settings.StylizerSettingError` and the configs' own errors, all
:class:`~adaattn_video.errors.StylestreamError`; ``argparse.ArgumentTypeError`` for the
argparse ``type=`` helpers. Example counts are bounded so the suite stays fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adaattn_video.errors import StylestreamError  # noqa: E402
from adaattn_video.settings import StylizerSpec, parse_size  # noqa: E402
from configkit.convert import from_mapping  # noqa: E402
from configkit.yaml_loader import parse_overrides, parse_yaml_text  # noqa: E402
from streamer.cli.values import parse_wh, wh, wh_list  # noqa: E402
from streamer.live import LiveConfig  # noqa: E402
from streamer.render import RenderConfig  # noqa: E402
from training.config import TrainConfig  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = [p.read_text() for p in sorted(CONFIGS.glob("*.yaml"))]
FAST = settings(max_examples=200, deadline=None)

# YAML-ish text: the characters that matter to the grammar, plus anything.
YAML_CHARS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?\n \t.~0123456789eExXnaNinf"))
yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(YAML_CHARS, max_size=200).map("".join),
)


@st.composite
def mutated_config(draw) -> str:
    """A shipped config with a few characters replaced, inserted or deleted."""
    text = draw(st.sampled_from(SHIPPED))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        change = draw(st.sampled_from(["replace", "insert", "delete"]))
        char = draw(st.one_of(YAML_CHARS, st.characters()))
        if change == "insert":
            text = text[:at] + char + text[at:]
        elif change == "replace":
            text = text[:at] + char + text[at + 1 :]
        else:
            text = text[:at] + text[at + 1 :]
    return text


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["640x360", "nan", "inf", "-1", "auto", "cuda", "0"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _keys(cls: type) -> list[str]:
    from configkit.convert import known_keys

    return known_keys(cls)


@FAST
@given(text=st.one_of(yaml_text, mutated_config()))
def test_yaml_loader_raises_only_config_errors(text: str) -> None:
    with contextlib.suppress(StylestreamError):
        parse_yaml_text(text)


@FAST
@given(items=st.lists(st.text(max_size=30), max_size=4))
def test_overrides_raise_only_config_errors(items: list[str]) -> None:
    with contextlib.suppress(StylestreamError):
        parse_overrides(items)


@FAST
@given(data=st.data(), cls=st.sampled_from([StylizerSpec, RenderConfig, LiveConfig, TrainConfig]))
def test_converter_raises_only_one_line_errors(data, cls: type) -> None:
    keys = [*_keys(cls), "unknown_key"]
    mapping = data.draw(st.dictionaries(st.sampled_from(keys), values, max_size=6))
    if cls is RenderConfig:
        mapping.setdefault("input", "in.mp4")
        mapping.setdefault("output", "out.mp4")
    try:
        config = from_mapping(cls, mapping)
    except StylestreamError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(config, cls)


@FAST
@given(text=st.one_of(st.text(max_size=20), st.from_regex(r"\s*-?\d{0,7}\s*[xX]?\s*-?\d{0,7}\s*")))
def test_size_parsers_raise_only_documented_errors(text: str) -> None:
    for parse in (parse_wh, parse_size):
        try:
            result = parse(text) if parse is parse_size else parse(text, "size")
        except StylestreamError:
            continue
        if parse is parse_wh and result is not None:
            assert min(result) >= 16
    for parse_text in (wh, wh_list):
        with contextlib.suppress(StylestreamError):
            parse_text(text)


@FAST
@given(value=values)
def test_structured_values_raise_only_documented_errors(value) -> None:
    for parse in (parse_wh,):
        with contextlib.suppress(StylestreamError):
            parse(value, "x")
    with contextlib.suppress(StylestreamError):
        parse_size(value)
