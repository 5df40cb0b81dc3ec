"""Spatial control (regions): masked attention against the quadratic references written like
the official demo, and the real architecture (random weights, small sizes) with hard masks."""

from __future__ import annotations

import pytest
import torch
from helpers.numeric import FP32_REORDER_CLOSE, FP32_REORDER_TOLERANCE, relative_error

from adaattn_video.config import ModelConfig
from adaattn_video.masked_attention import (
    CosineStyleSums,
    MaskedSoftmaxState,
    RegionError,
    SoftmaxStyleState,
    blend_weights,
    encode_masked_style,
    masked_softmax_attention_stats,
    masked_style_state,
    region_attention_stats,
    stylize_regions,
)
from adaattn_video.masked_attention_reference import (
    demo_masked_attention_stats_quadratic,
    region_attention_stats_quadratic,
)
from adaattn_video.model import build_model, init_untrained_

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=_generator(seed))


def _rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=_generator(seed))


# -- attention against the references ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["cosine", "softmax"])
@pytest.mark.parametrize(("d", "c", "nc", "ns"), [(7, 5, 13, 11), (33, 17, 61, 47)])
def test_hard_masks_on_one_style_match_the_demo_reference(kind, d, c, nc, ns) -> None:
    """As the official demo: one style image, two (content mask, style mask) pairs, content
    positions in no mask attend to the whole style (= the default style, unmasked)."""
    b = 2
    query, key = _randn((b, d, nc), 0), _randn((1, d, ns), 1)
    value = torch.relu(_randn((1, c, ns), 2) * 3)
    style_masks = [(_rand((1, ns), 3 + r) > 0.5).float() for r in range(2)]
    labels = torch.randint(0, 3, (b, nc), generator=_generator(9))  # 0 = in no mask
    content_masks = [(labels == r + 1).float() for r in range(2)]
    ref_mean, ref_std = demo_masked_attention_stats_quadratic(
        kind,
        query,
        key.expand(b, -1, -1),
        value.expand(b, -1, -1),
        content_masks,
        [m.expand(b, -1) for m in style_masks],
    )
    states = [masked_style_state(kind, key, value, None)] + [
        masked_style_state(kind, key, value, m.unsqueeze(1)) for m in style_masks
    ]
    if kind == "softmax":  # hard masks are gathered: the plain fused path, fewer positions
        assert all(isinstance(s, SoftmaxStyleState) for s in states)
        assert states[1].key.shape[-1] == int(style_masks[0].sum())
    weights, _ = blend_weights(torch.stack(content_masks, 1).unsqueeze(-1), "style")
    mean, std = region_attention_stats(query, states, weights.flatten(2))
    assert mean.shape == ref_mean.shape == (b, c, nc)
    assert relative_error(mean, ref_mean) < 1e-5
    assert relative_error(std, ref_std) < FP32_REORDER_TOLERANCE  # sqrt(E[V^2] - M^2) cancels


@pytest.mark.parametrize("kind", ["cosine", "softmax"])
def test_soft_masks_and_several_styles_match_the_quadratic_reference(kind) -> None:
    b, d, c, nc = 3, 19, 9, 37
    sizes = (23, 31, 17)  # default style + 2 regions, odd sizes
    keys = [_randn((1, d, n), 10 + i) for i, n in enumerate(sizes)]
    values = [torch.relu(_randn((1, c, n), 20 + i) * 2) for i, n in enumerate(sizes)]
    # region 1: soft style mask with zeros; region 2: soft everywhere
    style_weights = [
        None,
        _rand((1, sizes[1]), 30) * (_rand((1, sizes[1]), 31) > 0.3),
        _rand((1, sizes[2]), 32).clamp_min(0.05),
    ]
    states = [
        masked_style_state(kind, k, v, None if m is None else m.unsqueeze(1))
        for k, v, m in zip(keys, values, style_weights, strict=True)
    ]
    if kind == "softmax":
        assert isinstance(states[1], MaskedSoftmaxState)
    else:
        assert isinstance(states[1], CosineStyleSums)
    masks = _rand((b, 2, nc, 1), 40) * (_rand((b, 2, nc, 1), 41) > 0.2)  # soft, overlapping
    weights, _ = blend_weights(masks, "style")
    query = _randn((b, d, nc), 50)
    mean, std = region_attention_stats(query, states, weights.flatten(2))
    ref_mean, ref_std = region_attention_stats_quadratic(
        kind, query, keys, values, style_weights, weights.flatten(2)
    )
    assert relative_error(mean, ref_mean) < 1e-5
    assert relative_error(std, ref_std) < FP32_REORDER_TOLERANCE  # sqrt(E[V^2] - M^2) cancels


def test_soft_masked_softmax_in_query_blocks_matches_one_call(monkeypatch) -> None:
    import adaattn_video.attention as attention

    key, value = _randn((1, 6, 29), 1), _randn((1, 4, 29), 2)
    state = masked_style_state("softmax", key, value, _rand((1, 1, 29), 3).clamp_min(0.01))
    query = _randn((2, 6, 41), 4)
    whole = masked_softmax_attention_stats(query, state)
    monkeypatch.setattr(attention, "MAX_SCORES_PER_CALL", 2 * 29 * 5)  # blocks of 5 queries
    blocked = masked_softmax_attention_stats(query, state)
    for a, b in zip(whole, blocked, strict=True):
        torch.testing.assert_close(a, b)


def test_blend_weights_sum_to_one_and_uncovered_options() -> None:
    masks = torch.tensor([[0.0, 0.25, 1.0, 0.8], [0.0, 0.25, 0.0, 0.6]]).view(1, 2, 1, 4)
    style, coverage = blend_weights(masks, "style")
    torch.testing.assert_close(style.sum(1), torch.ones(1, 1, 4))
    # uncovered weight goes to the default (index 0); overlap (1.4) is normalised
    torch.testing.assert_close(style[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(style[0, :, 0, 1], torch.tensor([0.5, 0.25, 0.25]))
    torch.testing.assert_close(style[0, :, 0, 3], torch.tensor([0.0, 0.8 / 1.4, 0.6 / 1.4]))
    content, coverage = blend_weights(masks, "content")
    torch.testing.assert_close(content[0, :, 0, 1], torch.tensor([0.0, 0.5, 0.5]))
    torch.testing.assert_close(coverage.flatten(), torch.tensor([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match="uncovered"):
        blend_weights(masks, "nothing")  # type: ignore[arg-type]


# -- the real architecture --------------------------------------------------------------------
def _model(config: ModelConfig):
    return init_untrained_(build_model(config), seed=3).eval()


def _image(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A smooth random picture (blurred noise), more image-like than white noise."""
    noise = _rand((1, 3, shape[0] // 4, shape[1] // 4), seed)
    return torch.nn.functional.interpolate(noise, size=shape, mode="bilinear").clamp(0, 1)


# Receptive field of everything after the attention, in input pixels, rounded up:
# video: 4 convs at 1/4 (4 cells x 4 px) + 2 at 1/2 (2 x 2) + 2 at 1/1 = 22;
# image: relu5_1 merge conv at 1/8 (8) + decoder_layer_1 at 1/8 (8) + the relu3_1 stack (22) = 38.
CASES = [
    (ModelConfig(), (64, 112), 56, 24),
    (ModelConfig(variant="image", attention="softmax"), (64, 224), 112, 40),
]


@pytest.mark.parametrize(("config", "size", "edge", "margin"), CASES, ids=["video", "image"])
def test_hard_masks_equal_whole_frame_styles_away_from_the_edge(config, size, edge, margin):
    model = _model(config)
    content = _image(size, 1)
    styles = [model.encode_style(_image((48, 48), 2)), model.encode_style(_image((32, 64), 3))]
    masks = torch.zeros(1, 2, *size)
    masks[:, 0, :, :edge] = 1.0
    masks[:, 1, :, edge:] = 1.0
    out = stylize_regions(model, content, [styles[0]], [1.0], styles, masks)
    alone = [model.stylize(content, [s]) for s in styles]
    left, right = slice(0, edge - margin), slice(edge + margin, None)
    torch.testing.assert_close(out[..., left], alone[0][..., left], **FP32_REORDER_CLOSE)
    torch.testing.assert_close(out[..., right], alone[1][..., right], **FP32_REORDER_CLOSE)
    # and the regions really differ there (the test could fail)
    assert (alone[0][..., right] - alone[1][..., right]).abs().max() > 1e-2


@pytest.mark.parametrize("config", [c[0] for c in CASES], ids=["video", "image"])
def test_uncovered_positions_get_the_default_style_or_the_content(config) -> None:
    model = _model(config)
    content = _image((32, 48), 4)
    default, region = (
        model.encode_style(_image((32, 32), 5)),
        model.encode_style(_image((32, 32), 6)),
    )
    empty = torch.zeros(1, 1, 32, 48)
    as_style = stylize_regions(model, content, [default], [1.0], [region], empty, alpha=0.7)
    torch.testing.assert_close(as_style, model.stylize(content, [default], alpha=0.7))
    as_content = stylize_regions(
        model, content, [default], [1.0], [region], empty, uncovered="content"
    )
    torch.testing.assert_close(as_content, model.stylize(content, [default], alpha=0.0))
    full = torch.ones(1, 1, 32, 48)
    for uncovered in ("style", "content"):
        out = stylize_regions(model, content, [default], [1.0], [region], full, uncovered=uncovered)
        torch.testing.assert_close(out, model.stylize(content, [region]), **FP32_REORDER_CLOSE)


def test_a_style_mask_restricts_the_style_to_its_part() -> None:
    # the masked sums of a hard mask are the sums over the selected positions only
    key, value = _randn((1, 9, 40), 11), _randn((1, 5, 40), 12)
    hard = (_rand((1, 1, 40), 13) > 0.5).float()
    keep = hard[0, 0] > 0
    masked = masked_style_state("cosine", key, value, hard)
    selected = CosineStyleSums.from_style(key[..., keep], value[..., keep])
    torch.testing.assert_close(masked.weight, selected.weight)
    torch.testing.assert_close(masked.center, selected.center)
    torch.testing.assert_close(masked.count, selected.count)
    # the real model: an all-white style mask is the whole style, half of it is not
    model = _model(ModelConfig())
    style = _image((32, 64), 7)
    style[..., :32] = 0.0
    content = _image((32, 32), 8)
    whole = torch.ones(1, 1, 32, 32)
    plain = model.stylize(content, [model.encode_style(style)])
    all_white = encode_masked_style(model, style, torch.ones(1, 1, 32, 64))
    out = stylize_regions(model, content, [all_white], [1.0], [all_white], whole)
    torch.testing.assert_close(out, plain, **FP32_REORDER_CLOSE)
    half = torch.zeros(1, 1, 32, 64)
    half[..., 32:] = 1.0
    right = encode_masked_style(model, style, half)
    out = stylize_regions(model, content, [right], [1.0], [right], whole)
    assert (out - plain).abs().max() > 1e-2
    with pytest.raises(RegionError, match="selects no part"):
        encode_masked_style(model, style, torch.zeros(1, 1, 32, 64))


def test_masked_cosine_sums_stay_accurate_with_a_bf16_matmul() -> None:
    """The bf16 frame path: masked sums are centred on the MASK-weighted mean, so a style whose
    unmasked part has far larger values (offset 100) does not make ``E[V^2] - M^2`` cancel."""
    from adaattn_video.masked_attention import region_stats_positions

    d, c, nc, ns = 16, 8, 50, 64
    key, query = _randn((1, d, ns), 60), _randn((2, d, nc), 61)
    mask = (torch.arange(ns) < ns // 2).float().view(1, 1, ns) * _rand((1, 1, ns), 62)
    value = _rand((1, c, ns), 63) + 5.0 + 100.0 * (mask == 0).float()
    state = masked_style_state("cosine", key, value, mask)
    weights = torch.ones(2, 1, nc)
    ref_mean, ref_std = region_attention_stats_quadratic(
        "cosine", query, [key], [value], [mask[:, 0]], weights
    )
    mean, std = region_stats_positions(query.transpose(1, 2), [state], weights, torch.bfloat16)
    assert relative_error(mean.transpose(1, 2), ref_mean) < 5e-3
    assert relative_error(std.transpose(1, 2), ref_std) < 3e-2
