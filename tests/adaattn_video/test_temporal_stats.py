"""The motion-gated statistics smoothing: its arithmetic, and the hook in the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaattn_video.temporal_stats import TemporalStats, filter_stats, observe_frames, stats_scope

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stats(seed: int, batch: int = 1, n: int = 16, c: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, c, generator=g), torch.rand(batch, n, c, generator=g)


def test_unchanged_content_blends_with_momentum_and_the_first_frame_stays() -> None:
    stats = TemporalStats(momentum=0.5, threshold=0.1)
    frame = torch.full((1, 3, 16, 16), 0.5)
    stats.observe(frame)
    m1, s1 = _stats(1)
    out1 = stats.filter(m1.clone(), s1.clone(), (0, 4), (4, 4))
    assert torch.equal(out1[0], m1) and torch.equal(out1[1], s1)  # nothing to blend with
    stats.observe(frame)
    m2, s2 = _stats(2)
    mean, std = stats.filter(m2.clone(), s2.clone(), (0, 4), (4, 4))
    torch.testing.assert_close(mean, 0.5 * m1 + 0.5 * m2)
    torch.testing.assert_close(std, 0.5 * s1 + 0.5 * s2)


def test_changed_positions_keep_the_current_statistics() -> None:
    stats = TemporalStats(momentum=0.9, threshold=0.05)
    before = torch.zeros((1, 3, 32, 32))
    after = before.clone()
    after[..., :, :8] = 1.0  # the left quarter changes
    stats.observe(before)
    m1, s1 = _stats(1, n=64)
    stats.filter(m1.clone(), s1.clone(), (0, 8), (8, 8))
    stats.observe(after)
    m2, s2 = _stats(2, n=64)
    mean, _ = stats.filter(m2.clone(), s2.clone(), (0, 8), (8, 8))
    grid, cur, old = (t.view(8, 8, 3) for t in (mean[0], m2[0], m1[0]))
    # Columns 0-1 changed, column 2 is their neighbour (the 3x3 reach): current statistics.
    assert torch.equal(grid[:, :3], cur[:, :3])
    torch.testing.assert_close(grid[:, 3:], 0.9 * old[:, 3:] + 0.1 * cur[:, 3:])


def test_batch_and_row_blocks_equal_frame_by_frame() -> None:
    frames = torch.rand((3, 3, 16, 16), generator=torch.Generator().manual_seed(0)) * 0.02
    means, stds = _stats(5, batch=3)
    single = TemporalStats(momentum=0.7, threshold=0.1)
    expected = []
    for b in range(3):
        single.observe(frames[b : b + 1])
        expected.append(
            single.filter(means[b : b + 1].clone(), stds[b : b + 1].clone(), (0, 4), (4, 4))[0]
        )
    batched = TemporalStats(momentum=0.7, threshold=0.1)
    batched.observe(frames)
    mean, std = means.clone(), stds.clone()
    for r0, r1 in ((0, 1), (1, 4)):  # two row blocks, as the blocked attention calls it
        span = slice(r0 * 4, r1 * 4)
        m, s = mean[:, span], std[:, span]
        batched.filter(m, s, (r0, r1), (4, 4))
    torch.testing.assert_close(mean, torch.cat(expected))
    assert not torch.equal(mean[1:], means[1:])  # something was blended


def test_reset_forgets_and_the_hooks_are_noops_outside_a_scope() -> None:
    stats = TemporalStats(momentum=0.5, threshold=1.0)
    frame = torch.zeros((1, 3, 8, 8))
    m1, s1 = _stats(1, n=4)
    m2, s2 = _stats(2, n=4)
    with stats_scope(stats):
        observe_frames(frame)
        filter_stats(m1.clone(), s1.clone(), (0, 2), (2, 2))
    stats.reset()
    with stats_scope(stats):
        observe_frames(frame)
        mean, _ = filter_stats(m2.clone(), s2.clone(), (0, 2), (2, 2))
    assert torch.equal(mean, m2)
    mean, std = filter_stats(m2, s2, (0, 2), (2, 2))  # no scope: untouched, same objects
    assert mean is m2 and std is s2


def test_in_the_model_identical_frames_give_the_per_frame_output_and_motion_differs(
    untrained_stylizer,
) -> None:
    """The hook reaches the real attention: identical frames average identical statistics (the
    per-frame output); after a reset nothing of the previous frame remains."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, 3, 32, 48), dtype=np.uint8)
    content = torch.from_numpy(frame).float() / 255
    other = torch.flip(content, dims=[-1])
    plain = untrained_stylizer.stylize_tensor(content)
    plain_other = untrained_stylizer.stylize_tensor(other)
    stats = TemporalStats(momentum=0.9, threshold=10.0)  # the gate is always open
    with stats_scope(stats):
        first = untrained_stylizer.stylize_tensor(content)
        second = untrained_stylizer.stylize_tensor(content)
        smoothed_other = untrained_stylizer.stylize_tensor(other)
    assert stats.has_history
    torch.testing.assert_close(first, plain)
    torch.testing.assert_close(second, plain, atol=1e-5, rtol=0)
    assert (smoothed_other - plain_other).abs().max() > 1e-4  # 90% of the old statistics
    stats.reset()
    with stats_scope(stats):
        fresh = untrained_stylizer.stylize_tensor(other)
    torch.testing.assert_close(fresh, plain_other)
