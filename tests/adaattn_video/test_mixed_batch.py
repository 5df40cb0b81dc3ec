"""Per-frame styles in one batch (``stylestream serve``): equal to stylizing each frame alone."""

from __future__ import annotations

import pytest
import torch
from helpers.numeric import FP32_REORDER_TOLERANCE, relative_error

from adaattn_video.config import ModelConfig
from adaattn_video.mixed_batch import FrameStyle, PerFrameStyleError, stylize_per_frame
from adaattn_video.model import build_model, init_untrained_

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def video_model() -> torch.nn.Module:
    return init_untrained_(build_model(ModelConfig()), seed=3).eval()


def test_a_batch_with_different_styles_per_frame_equals_each_frame_alone(video_model) -> None:
    model = video_model
    styles = [model.encode_style(_images((1, 3, 32, 40), seed)) for seed in (10, 11, 12)]
    frame_styles = [
        FrameStyle((styles[0],), (1.0,), alpha=1.0),
        FrameStyle((styles[1], styles[2]), (0.7, 0.3), alpha=1.0),
        FrameStyle((styles[2],), (1.0,), alpha=0.6),
        FrameStyle((styles[0],), (1.0,), alpha=1.0),
    ]
    content = _images((4, 3, 24, 32), seed=1)
    batched = stylize_per_frame(model, content, frame_styles)
    assert batched.shape == content.shape
    for b, style in enumerate(frame_styles):
        alone = model.stylize(content[b : b + 1], style.features, style.weights, style.alpha)
        assert relative_error(batched[b : b + 1], alone) < FP32_REORDER_TOLERANCE, b
    # The per-frame styles really differ (the comparison above could not pass by accident):
    other = model.stylize(content[0:1], frame_styles[1].features, frame_styles[1].weights)
    assert relative_error(other, batched[0:1]) > 100 * FP32_REORDER_TOLERANCE


def test_one_shared_style_equals_the_plain_batch_call(video_model) -> None:
    model = video_model
    style = model.encode_style(_images((1, 3, 32, 32), seed=5))
    content = _images((3, 3, 16, 24), seed=2)
    shared = FrameStyle((style,), (1.0,))
    batched = stylize_per_frame(model, content, [shared] * 3)
    plain = model.stylize(content, [style], [1.0])
    assert relative_error(batched, plain) < FP32_REORDER_TOLERANCE


def test_the_image_model_is_refused_with_a_reason() -> None:
    model = build_model(ModelConfig(variant="image", attention="softmax")).eval()
    with pytest.raises(PerFrameStyleError, match="video model"):
        stylize_per_frame(model, torch.zeros(1, 3, 32, 32), [])


def test_mismatched_counts_are_refused(video_model) -> None:
    style = video_model.encode_style(_images((1, 3, 16, 16), seed=4))
    with pytest.raises(PerFrameStyleError, match="expected 2 frame styles"):
        stylize_per_frame(video_model, torch.zeros(2, 3, 16, 16), [FrameStyle((style,), (1.0,))])
    with pytest.raises(PerFrameStyleError, match="one weight per style"):
        FrameStyle((style,), (0.5, 0.5))


@pytest.mark.gpu
def test_per_frame_styles_on_cuda_in_half_precision_match_each_frame_alone() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = init_untrained_(build_model(ModelConfig()), seed=3).eval().cuda()
    model.set_compute_dtype(torch.float16, channels_last=True)
    styles = [model.encode_style(_images((1, 3, 64, 64), s).cuda()) for s in (20, 21)]
    frame_styles = [FrameStyle((styles[b % 2],), (1.0,), alpha=1.0 - 0.2 * b) for b in range(4)]
    content = _images((4, 3, 96, 128), seed=7).cuda()
    batched = stylize_per_frame(model, content, frame_styles).float()
    for b, style in enumerate(frame_styles):
        alone = model.stylize(content[b : b + 1], style.features, style.weights, style.alpha)
        # fp16 convolutions: batched and single kernels may round differently (~1e-3).
        assert relative_error(batched[b : b + 1], alone.float()) < 2e-2, b
