"""Property tests of the newer parsers: whatever text or YAML value arrives, each either gives a
checked value or raises one one-line :class:`StylestreamError`, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from configkit.errors import StylestreamError
from streamer.outputs.spec import parse_output
from streamer.regions.specs import RegionSpec, parse_region, parse_regions
from streamer.serve.config import serve_config_from_mapping

_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _one_line(err: StylestreamError) -> None:
    assert str(err) and "\n" not in str(err)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        _text,
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["rtmp", "rtmps", "rtsp", "srt", "hls", "ndi", "v4l2", "udp", "x"]),
            _text,
        ),
    )
)
def test_parse_output_gives_a_spec_or_one_line(url: str) -> None:
    try:
        spec = parse_output(url)
    except StylestreamError as err:
        _one_line(err)
        return
    assert spec is not None


_keys = st.sampled_from(
    ["style", "mask", "key", "tolerance", "softness", "invert", "style_mask", "colour", ""]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_keys, _text), max_size=5))
def test_region_text_gives_a_checked_spec_or_one_line(pairs: list[tuple[str, str]]) -> None:
    text = ",".join(f"{k}={v}" for k, v in pairs)
    try:
        spec = parse_region(text)
    except StylestreamError as err:
        _one_line(err)
        return
    assert isinstance(spec, RegionSpec) and spec.style
    assert (spec.mask is None) != (spec.key is None)
    assert set(spec.paths) <= {spec.style, spec.mask, spec.style_mask}


@settings(max_examples=300, deadline=None)
@given(_values)
def test_region_yaml_values_give_specs_or_one_line(value: Any) -> None:
    try:
        specs = parse_regions(value)
    except StylestreamError as err:
        _one_line(err)
        return
    assert all(isinstance(s, RegionSpec) for s in specs)


_stream_keys = st.sampled_from(
    ["name", "source", "style", "alpha", "size", "record", "region", "uncovered", "weights", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_stream_keys, _values, max_size=6))
def test_serve_stream_entries_give_a_config_or_one_line(entry: dict[str, Any]) -> None:
    try:
        config = serve_config_from_mapping({"untrained": True, "streams": [entry]})
    except StylestreamError as err:
        _one_line(err)
        return
    assert len(config.streams) == 1 and config.streams[0].name
