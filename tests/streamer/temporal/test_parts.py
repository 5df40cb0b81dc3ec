"""The pieces of streamer.temporal: options, flow and its mask, cuts, warping, guided upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configkit.convert import ConfigError, from_mapping, to_mapping
from configkit.errors import StylestreamError
from streamer.temporal.cuts import SceneCutDetector
from streamer.temporal.flow import FlowEstimator
from streamer.temporal.guided import guided_upsample, luma
from streamer.temporal.options import TemporalOptions, TemporalSettingError, preset
from streamer.temporal.warp import flow_to_device, warp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- options ------------------------------------------------------------------------------------
def test_options_parse_from_a_flat_mapping_and_round_trip() -> None:
    options = from_mapping(
        TemporalOptions,
        {"temporal": "flow", "keyframe-interval": "3", "work_size": "640x360"},
        source="flags",
    )
    assert (options.temporal, options.keyframe_interval, options.work_size) == (
        "flow",
        3,
        (360, 640),
    )
    assert to_mapping(options)["work_size"] == "640x360"
    assert from_mapping(TemporalOptions, {"work_size": "384"}).work_size == 384
    assert not TemporalOptions().active and options.active and options.needs_flow


@pytest.mark.parametrize(
    "values",
    [
        {"temporal": "wobble"},
        {"keyframe_interval": "0"},
        {"work_size": "8"},
        {"temporal_strength": "1.0"},
        {"temporal_min_valid": "1.5"},
        {"temporal_flow_size": "16"},
        {"temporal_flow_preset": "slow"},
    ],
)
def test_bad_options_are_one_line_user_errors(values: dict) -> None:
    with pytest.raises(StylestreamError) as caught:
        from_mapping(TemporalOptions, values, source="flags")
    assert isinstance(caught.value, (ConfigError, TemporalSettingError))
    message = str(caught.value)
    assert "\n" not in message and next(iter(values)) in message


def test_presets() -> None:
    fast = preset("fast")
    assert fast.keyframe_interval > 1 and fast.work_size is not None
    assert preset("fast", work_size=None).work_size is None
    with pytest.raises(TemporalSettingError, match="unknown temporal preset"):
        preset("warp9")


# -- flow, mask, cuts -----------------------------------------------------------------------------
def test_dis_recovers_an_exact_pan_and_trusts_it(clips) -> None:
    frames, motion = clips.pan(frames=2, size=(96, 128), speed=3.0)
    estimator = FlowEstimator(size=128)
    found = estimator.motion(estimator.prepare(frames[1]), estimator.prepare(frames[0]))
    inner = (slice(8, -8), slice(8, -8))  # away from the borders DIS cannot see past
    error = np.linalg.norm(found.flow - motion.flows[0], axis=-1)[inner]
    assert np.median(error) < 0.5  # of a 3 px motion, DIS "fast" preset at 128 px
    assert found.valid[inner].mean() > 0.9


def test_the_medium_flow_preset_is_more_exact_than_fast(clips) -> None:
    """The default flow preset (``medium``) pays for itself: a sub-pixel pan is found more
    exactly than by ``fast``; every preset the options accept is one the estimator knows."""
    from streamer.temporal.flow import PRESETS
    from streamer.temporal.options import FLOW_PRESETS

    assert tuple(PRESETS) == FLOW_PRESETS and TemporalOptions().temporal_flow_preset == "medium"
    frames, motion = clips.pan(frames=2, size=(96, 128), speed=2.5)
    inner = (slice(8, -8), slice(8, -8))
    errors = {}
    for name in ("fast", "medium"):
        estimator = FlowEstimator(size=128, preset=name)
        found = estimator.motion(estimator.prepare(frames[1]), estimator.prepare(frames[0]))
        errors[name] = np.linalg.norm(found.flow - motion.flows[0], axis=-1)[inner].mean()
    assert errors["medium"] < errors["fast"]


def test_unrelated_frames_have_little_reliable_motion(clips) -> None:
    a, _ = clips.pan("tubingen.jpg", frames=2, size=(96, 128))
    b, _ = clips.pan("bird.jpg", frames=2, size=(96, 128))
    estimator = FlowEstimator(size=128)
    motion = estimator.motion(estimator.prepare(b[0]), estimator.prepare(a[0]))
    assert motion.valid_fraction < 0.5


def test_cut_detector_ignores_a_pan_and_sees_a_new_shot(clips) -> None:
    pan, _ = clips.pan("tubingen.jpg", frames=6, size=(96, 128), speed=4.0)
    other, _ = clips.pan("venice-boat.jpg", frames=1 + 1, size=(96, 128))
    estimator, detector = FlowEstimator(size=128), SceneCutDetector()
    cuts = [detector.is_cut(estimator.prepare(f)) for f in [*pan, other[0]]]
    assert cuts == [False] * 6 + [True]


# -- warping -------------------------------------------------------------------------------------
def test_warp_by_an_integer_flow_is_a_shift_and_flow_scales_with_size() -> None:
    image = torch.rand((1, 3, 12, 16), generator=torch.Generator().manual_seed(0))
    flow = torch.zeros((1, 2, 12, 16))
    flow[:, 0] = 3.0  # out(p) = image(p + (3, 0))
    shifted = warp(image, flow)
    torch.testing.assert_close(shifted[..., :-3], image[..., 3:])
    small = np.zeros((6, 8, 2), np.float32)
    small[..., 1] = 1.5
    big, mask = flow_to_device(small, np.ones((6, 8), np.float32), (12, 16), torch.device("cpu"))
    assert big.shape == (1, 2, 12, 16) and torch.allclose(big[:, 1], torch.tensor(3.0))
    assert mask.shape == (1, 1, 12, 16) and torch.all(mask == 1)


# -- guided upsampling ---------------------------------------------------------------------------
def _edge_energy(image: torch.Tensor) -> float:
    """Mean squared finite difference (both directions): how much sharp detail there is."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


def test_guided_upsampling_keeps_edges_sharper_than_bilinear(clips) -> None:
    full = torch.from_numpy(clips.photo("venice-boat.jpg")).permute(2, 0, 1)[None].float() / 255
    full = F.interpolate(full, size=(256, 256), mode="area")
    small = F.interpolate(full, size=(96, 96), mode="bilinear", antialias=True)
    low = 0.2 + 0.6 * small.flip(1)  # a "stylization" that follows the content's edges
    target = 0.2 + 0.6 * full.flip(1)
    guided = guided_upsample(low, small, full)
    bilinear = F.interpolate(low, size=(256, 256), mode="bilinear", align_corners=False)
    assert _edge_energy(guided) > 1.5 * _edge_energy(bilinear)
    assert (guided - target).abs().mean() < 0.8 * (bilinear - target).abs().mean()
    flat = torch.full_like(low, 0.5)  # no correlation with the guide: plain bilinear
    torch.testing.assert_close(guided_upsample(flat, small, full), torch.full_like(full, 0.5))
    assert luma(full).shape == (1, 1, 256, 256)
