"""TemporalStylizer on the real architecture (untrained, small sizes) and clips with exact motion."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.temporal.options import TemporalOptions
from streamer.temporal.stylizer import TemporalStylizer
from training.evaluate import warping_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODES = [
    TemporalOptions(temporal="stats"),
    TemporalOptions(temporal="flow"),
    TemporalOptions(keyframe_interval=2),
    TemporalOptions(temporal="flow", keyframe_interval=3),
]


def per_frame(stylizer, frames: np.ndarray) -> np.ndarray:
    return np.stack([stylizer(f) for f in frames])


def run(wrapper: TemporalStylizer, frames: np.ndarray) -> np.ndarray:
    return np.stack([wrapper(f) for f in frames])


def cut_clip(clips, first: int = 3, second: int = 3) -> np.ndarray:
    a, _ = clips.pan("tubingen.jpg", frames=first)
    b, _ = clips.pan("venice-boat.jpg", frames=second)
    return np.concatenate([a, b])


@pytest.mark.parametrize("options", MODES, ids=lambda o: f"{o.temporal}-kf{o.keyframe_interval}")
def test_a_static_clip_gives_the_per_frame_output(untrained_stylizer, clips, options) -> None:
    frames, _ = clips.pan(frames=5, speed=0.0)
    expected = per_frame(untrained_stylizer, frames)
    out = run(TemporalStylizer(untrained_stylizer, options), frames)
    assert np.abs(out.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("options", MODES, ids=lambda o: f"{o.temporal}-kf{o.keyframe_interval}")
def test_the_first_frame_after_a_cut_has_no_trace_of_the_previous_shot(
    untrained_stylizer, clips, options
) -> None:
    frames = cut_clip(clips, first=3)  # the cut at an odd index: no keyframe was due
    expected = per_frame(untrained_stylizer, frames[3:4])[0]
    wrapper = TemporalStylizer(untrained_stylizer, options)
    out = run(wrapper, frames)
    assert np.array_equal(out[3], expected)
    assert wrapper.counters.cuts == 1 and wrapper.counters.resets == 1


@pytest.mark.slow
def test_flow_on_an_exact_pan_cuts_the_warping_error(untrained_stylizer, clips) -> None:
    frames, motion = clips.pan(frames=8, size=(64, 96), speed=2.0)
    plain = warping_error(per_frame(untrained_stylizer, frames), motion)
    flow = TemporalStylizer(untrained_stylizer, TemporalOptions(temporal="flow"))
    blended = warping_error(run(flow, frames), motion)
    keyed = TemporalStylizer(untrained_stylizer, TemporalOptions(keyframe_interval=2))
    warped = warping_error(run(keyed, frames), motion)
    assert blended < 0.5 * plain
    assert warped < 0.35 * plain  # every other frame is an exact warp of its keyframe
    assert flow.counters.blended == 7 and flow.counters.stylized == 8


def test_keyframe_interval_2_stylizes_half_a_smooth_pan_and_falls_back_on_noise(
    untrained_stylizer, clips
) -> None:
    frames, _ = clips.pan(frames=8, speed=2.0)
    wrapper = TemporalStylizer(untrained_stylizer, TemporalOptions(keyframe_interval=2))
    run(wrapper, frames)
    assert (wrapper.counters.stylized, wrapper.counters.warped) == (4, 4)
    assert wrapper.counters.fallbacks == 0
    # Unrelated noise frames with the same histogram: no reliable motion, no cut either.
    noise = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    noisy = TemporalStylizer(untrained_stylizer, TemporalOptions(keyframe_interval=2))
    out = run(noisy, noise)
    assert noisy.counters.fallbacks == 3 and noisy.counters.warped == 0  # frames 1-3
    assert np.array_equal(out, per_frame(untrained_stylizer, noise))


def test_two_streams_never_share_state(untrained_stylizer, clips) -> None:
    a, _ = clips.pan("tubingen.jpg", frames=4)
    b, _ = clips.pan("bird.jpg", frames=4, speed=1.0)
    options = TemporalOptions(temporal="flow", keyframe_interval=2)
    alone_a = run(TemporalStylizer(untrained_stylizer, options), a)
    alone_b = run(TemporalStylizer(untrained_stylizer, options), b)
    first, second = (TemporalStylizer(untrained_stylizer, options) for _ in range(2))
    together = [(first(fa), second(fb)) for fa, fb in zip(a, b, strict=True)]  # interleaved
    assert np.array_equal(np.stack([t[0] for t in together]), alone_a)
    assert np.array_equal(np.stack([t[1] for t in together]), alone_b)


def test_switching_style_or_alpha_or_calling_reset_starts_fresh(clips) -> None:
    stylizer = clips.stylizer(0)
    frames, _ = clips.pan(frames=6)
    wrapper = TemporalStylizer(stylizer, TemporalOptions(temporal="flow"))
    run(wrapper, frames[:2])
    wrapper.set_style(clips.style(1))
    after_switch = wrapper(frames[2])
    assert np.array_equal(after_switch, stylizer(frames[2]))  # no blend with the old style
    stylizer.set_style(clips.style(2))  # switched on the inner stylizer directly
    assert np.array_equal(wrapper(frames[3]), stylizer(frames[3]))
    stylizer.alpha = 0.5
    assert np.array_equal(wrapper(frames[4]), stylizer(frames[4]))
    wrapper.reset()  # e.g. a source reconnect
    assert np.array_equal(wrapper(frames[5]), stylizer(frames[5]))
    assert wrapper.counters.resets == 4 and wrapper.counters.cuts == 0
    assert "4 resets" in wrapper.status()


def test_a_batch_equals_frame_by_frame(untrained_stylizer, clips) -> None:
    frames = cut_clip(clips, first=3, second=3)
    for options in (TemporalOptions(temporal="flow"), TemporalOptions(temporal="stats")):
        one_by_one = run(TemporalStylizer(untrained_stylizer, options), frames)
        batched = TemporalStylizer(untrained_stylizer, options)
        out = np.concatenate([batched(frames[:4]), batched(frames[4:])])
        assert np.abs(out.astype(int) - one_by_one).max() <= 1


def test_work_size_stylizes_small_and_returns_full_size(untrained_stylizer, clips) -> None:
    frames, _ = clips.pan(frames=2, size=(96, 128))
    wrapper = TemporalStylizer(untrained_stylizer, TemporalOptions(work_size=64))
    out = run(wrapper, frames)
    assert out.shape == frames.shape
    full = per_frame(untrained_stylizer, frames)
    psnr = 10 * np.log10(255**2 / np.mean((out.astype(float) - full) ** 2))
    assert psnr > 20  # the same picture, from half the pixels


def test_off_is_a_pass_through(untrained_stylizer, clips) -> None:
    frames, _ = clips.pan(frames=2)
    wrapper = TemporalStylizer(untrained_stylizer)
    assert np.array_equal(run(wrapper, frames), per_frame(untrained_stylizer, frames))
    assert wrapper.style_id == untrained_stylizer.style_id
