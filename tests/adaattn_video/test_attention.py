"""The fast attention paths against the quadratic reference forms (AdaAttN paper, section 3.2)."""

from __future__ import annotations

import pytest
import torch
from helpers.numeric import FP32_REORDER_TOLERANCE, relative_error

from adaattn_video.attention import (
    AdaAttN,
    CosineStyleSums,
    adaptive_attention_norm,
    cosine_attention_stats,
    softmax_attention_stats,
)
from adaattn_video.attention_keys import unit_positions
from adaattn_video.attention_reference import (
    cosine_attention_stats_quadratic,
    softmax_attention_stats_quadratic,
)
from adaattn_video.functional import attention_key, mean_std, mean_variance_norm


def _random(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * scale


@pytest.mark.parametrize(
    ("d", "c", "nc", "ns"), [(8, 4, 1, 2), (16, 8, 37, 53), (448, 256, 96, 130), (5, 3, 121, 7)]
)
def test_cosine_linear_matches_quadratic(d: int, c: int, nc: int, ns: int) -> None:
    query, key = _random((2, d, nc), 0), _random((2, d, ns), 1)
    value = torch.relu(_random((2, c, ns), 2, scale=3.0))  # relu-like features, as in VGG
    mean, std = cosine_attention_stats(query, CosineStyleSums.from_style(key, value))
    ref_mean, ref_std = cosine_attention_stats_quadratic(query, key, value)
    assert mean.shape == ref_mean.shape == (2, c, nc)
    # fp32 rounding of sums over up to 130 positions: well below 1e-4 of the range.
    assert relative_error(mean, ref_mean) < FP32_REORDER_TOLERANCE
    assert relative_error(std, ref_std) < FP32_REORDER_TOLERANCE


def test_cosine_scores_never_negative_so_relu_is_inactive() -> None:
    """The linear form relies on q.k + 1 >= 0 for unit vectors (the cosine form of the published video model)."""
    q = unit_positions(_random((1, 16, 200), 3))
    k = unit_positions(_random((1, 16, 300), 4))
    assert float((torch.bmm(q.transpose(1, 2), k) + 1).min()) >= 0.0


def test_cosine_sums_of_one_style_broadcast_over_a_batch() -> None:
    query, key, value = _random((3, 8, 20), 5), _random((1, 8, 30), 6), _random((1, 4, 30), 7).abs()
    sums = CosineStyleSums.from_style(key, value)
    batched, _ = cosine_attention_stats(query, sums)
    for i in range(3):
        single, _ = cosine_attention_stats(query[i : i + 1], sums)
        torch.testing.assert_close(batched[i : i + 1], single)


def test_cosine_cost_does_not_depend_on_style_size() -> None:
    """The sums have the same shapes whatever the number of style positions."""
    small = CosineStyleSums.from_style(_random((1, 8, 10), 8), _random((1, 4, 10), 9))
    large = CosineStyleSums.from_style(_random((1, 8, 5000), 8), _random((1, 4, 5000), 9))
    assert small.weight.shape == large.weight.shape == (1, 8 + 1, 1 + 2 * 4)
    assert float(large.count.squeeze()) == 5000.0


@pytest.mark.parametrize(
    ("d", "c", "nc", "ns"), [(8, 4, 1, 2), (16, 8, 37, 53), (64, 32, 150, 257)]
)
def test_fused_softmax_matches_quadratic(d: int, c: int, nc: int, ns: int) -> None:
    # Scale 0.3 keeps logits in the range trained projections produce (|q.k| up to ~20).
    query, key = _random((2, d, nc), 10, 0.3), _random((2, d, ns), 11, 0.3)
    value = torch.relu(_random((2, c, ns), 12, 3.0))
    mean, std = softmax_attention_stats(query, key, value)
    ref_mean, ref_std = softmax_attention_stats_quadratic(query, key, value)
    assert relative_error(mean, ref_mean) < FP32_REORDER_TOLERANCE
    assert relative_error(std, ref_std) < FP32_REORDER_TOLERANCE


@pytest.mark.parametrize("kind", ["cosine", "softmax"])
def test_adaattn_module_fast_matches_quadratic(kind: str) -> None:
    torch.manual_seed(0)
    module = AdaAttN(channels=12, key_channels=20, kind=kind)  # type: ignore[arg-type]
    content, style = _random((2, 12, 9, 11), 13).abs(), _random((1, 12, 13, 7), 14).abs()
    content_key, style_key = _random((2, 20, 9, 11), 15), _random((1, 20, 13, 7), 16)
    fast = module(content, content_key, module.style_state(style, style_key))
    reference = module.forward_quadratic(content, style, content_key, style_key)
    assert fast.shape == content.shape
    assert relative_error(fast, reference) < FP32_REORDER_TOLERANCE


@pytest.mark.parametrize("kind", ["cosine", "softmax"])
def test_parameter_free_adaattn_fast_matches_quadratic_and_has_gradients(kind: str) -> None:
    content = _random((2, 6, 5, 7), 17).abs().requires_grad_()
    style = _random((2, 6, 4, 9), 18).abs()
    content_key, style_key = _random((2, 10, 5, 7), 19), _random((2, 10, 4, 9), 20)
    fast = adaptive_attention_norm(kind, content, style, content_key, style_key)  # type: ignore[arg-type]
    reference = adaptive_attention_norm(
        kind, content, style, content_key, style_key, quadratic=True
    )  # type: ignore[arg-type]
    assert relative_error(fast, reference) < FP32_REORDER_TOLERANCE
    fast.sum().backward()
    assert content.grad is not None and torch.isfinite(content.grad).all()


def test_adaattn_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="cosine"):
        AdaAttN(4, 4, kind="dot")  # type: ignore[arg-type]


def test_mean_variance_norm_uses_unbiased_variance() -> None:
    x = _random((2, 3, 4, 5), 21) * 7 + 3
    normed = mean_variance_norm(x)
    flat = normed.flatten(2)
    torch.testing.assert_close(flat.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    # var + 1e-5 in the denominator: the unbiased variance comes out just below 1.
    torch.testing.assert_close(flat.var(-1, unbiased=True), torch.ones(2, 3), atol=1e-4, rtol=0)
    mean, std = mean_std(x)
    assert mean.shape == std.shape == (2, 3, 1, 1)


def test_attention_key_resizes_shallow_taps_nearest_then_normalizes() -> None:
    taps = [_random((1, 64, 16, 16), 22), _random((1, 128, 8, 8), 23), _random((1, 256, 4, 4), 24)]
    key = attention_key(taps)
    assert key.shape == (1, 448, 4, 4)
    expected_first = mean_variance_norm(taps[0][:, :, ::4, ::4])  # nearest at 1/4 keeps every 4th
    torch.testing.assert_close(key[:, :64], expected_first)


def test_fused_softmax_in_query_blocks_matches_one_call(monkeypatch) -> None:
    """Blocks of queries (the bounded-memory fallback) give the same statistics."""
    import adaattn_video.attention as attention

    query, key = _random((2, 16, 77), 30, 0.3), _random((2, 16, 50), 31, 0.3)
    value = torch.relu(_random((2, 8, 50), 32, 3.0))
    whole = softmax_attention_stats(query, key, value)
    monkeypatch.setattr(attention, "MAX_SCORES_PER_CALL", 2 * 50 * 10)  # 10 queries per block
    blocked = softmax_attention_stats(query, key, value)
    for a, b in zip(whole, blocked, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_blocked_frame_path_equals_the_whole_tensor_path(monkeypatch, dtype) -> None:
    """Inference runs the cosine AdaAttN in blocks of rows; training (autograd) and export run
    it on whole tensors. Several blocks (one not full), a batch of 2, 1/4-size keys as in VGG."""
    import adaattn_video.cosine_attention as cosine_attention

    torch.manual_seed(0)
    module = AdaAttN(channels=8, key_channels=14, kind="cosine")
    taps = [
        _random((2, 2, 20, 28), 40).abs().to(dtype),
        _random((2, 4, 10, 14), 41).abs().to(dtype),
        _random((2, 8, 5, 7), 42).abs().to(dtype),
    ]
    style = [_random((1, 2, 12, 16), 43).abs(), _random((1, 4, 6, 8), 44).abs()]
    style.append(_random((1, 8, 3, 4), 45).abs())
    state = module.style_state_from_taps(style[-1], style)
    with torch.no_grad():
        monkeypatch.setattr(cosine_attention, "BLOCK_POSITIONS", 2 * 7)  # 2 rows of 7 per block
        blocked = module.forward_taps(taps[-1], taps, state, dtype)
        with torch.enable_grad():  # autograd on: the whole-tensor path
            whole = module.forward_taps(taps[-1], taps, state, dtype).detach()
    assert blocked.shape == whole.shape == (2, 8, 5, 7)
    # Same float32 statistics; bf16 rounds the two matmuls' outputs the same way in both.
    assert relative_error(blocked, whole) < (1e-5 if dtype == torch.float32 else 1e-2)
