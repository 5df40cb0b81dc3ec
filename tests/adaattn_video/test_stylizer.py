"""FrameStylizer: uint8 frames in and out, sizes kept, styles switched, settings validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaattn_video import FrameStylizer, StylizerConfig, open_model
from adaattn_video.assets import style_images
from adaattn_video.errors import ImageReadError


@pytest.fixture(scope="module")
def stylizer(model) -> FrameStylizer:
    result = FrameStylizer(model, StylizerConfig(style_size=64))
    result.set_style(style_images()[0])
    return result


def _frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("hw", [(32, 32), (37, 53), (9, 15), (1, 1), (66, 31)])
def test_output_size_equals_input_size(stylizer: FrameStylizer, hw: tuple[int, int]) -> None:
    frames = _frames((2, *hw, 3))
    out = stylizer(frames)
    assert isinstance(out, np.ndarray)
    assert out.shape == frames.shape and out.dtype == np.uint8


def test_single_frame_numpy_and_torch_agree_with_the_batch(stylizer: FrameStylizer) -> None:
    frames = _frames((3, 24, 40, 3), seed=1)
    batch = stylizer(frames).astype(np.int16)
    for i in range(3):
        # Batched convolutions round differently in the last float bit: a value at x.5 may
        # land one grey level apart after uint8 rounding, never more.
        assert np.abs(stylizer(frames[i]).astype(np.int16) - batch[i]).max() <= 1
    as_tensor = stylizer(torch.from_numpy(frames))
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), batch.astype(np.uint8))


def test_untrained_output_keeps_the_input_structure(stylizer: FrameStylizer) -> None:
    """Pipeline tests rely on the random model's output changing when the input changes."""
    frames = _frames((2, 32, 32, 3), seed=2)
    out = stylizer(frames).astype(np.int16)
    assert out.std() > 10
    assert np.abs(out[0] - out[1]).mean() > 5


def test_style_switch_takes_effect_and_a_bad_style_keeps_the_old_one(model, tmp_path) -> None:
    local = FrameStylizer(model, StylizerConfig(style_size=64))
    first, second = style_images()[:2]
    frames = _frames((1, 32, 32, 3), seed=3)
    local.set_style(first)
    before = local(frames)
    local.set_style(second)
    assert local.style_id == second.stem
    assert not np.array_equal(local(frames), before)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        local.set_style(broken)
    with pytest.raises(ImageReadError, match="does not exist"):
        local.set_style(tmp_path / "missing.png")
    assert local.style_id == second.stem


def test_style_mix_and_alpha(stylizer: FrameStylizer) -> None:
    local = FrameStylizer(stylizer.model, StylizerConfig(style_size=64))
    first, second = style_images()[:2]
    frames = _frames((1, 32, 32, 3), seed=4)
    local.set_style([first, second], [3, 1])
    assert local.style.weights == (0.75, 0.25)
    mixed = local(frames)
    local.set_style(first)
    assert not np.array_equal(local(frames), mixed)
    local.alpha = 0.0
    content_only = local(frames)
    local.set_style(second)
    np.testing.assert_array_equal(local(frames), content_only)
    with pytest.raises(ValueError, match="alpha"):
        local.alpha = 1.5


def test_array_styles_and_resize_option(model) -> None:
    local = FrameStylizer(model, StylizerConfig(size=(32, 48)))
    local.set_style(_frames((40, 40, 3), seed=5))
    assert local.style_id == "array0"
    assert local(_frames((2, 20, 30, 3))).shape == (2, 32, 48, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp8"}, "precision"),
        ({"alpha": -0.1}, "alpha"),
        ({"style_size": 4}, "style_size"),
        ({"size": (8, 8)}, "size"),
        ({"device": "gpu0"}, "device"),
    ],
)
def test_config_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StylizerConfig(**kwargs)


def test_frames_must_be_rgb_uint8(stylizer: FrameStylizer) -> None:
    with pytest.raises(ValueError, match="uint8"):
        stylizer(np.zeros((2, 16, 16, 3), dtype=np.float32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_stylizer_matches_cpu_within_rounding() -> None:
    frames = _frames((2, 48, 64, 3), seed=6)
    outputs = []
    for config in (StylizerConfig(), StylizerConfig(device="cuda", precision="fp16")):
        local = FrameStylizer(open_model(None, untrained=True), config)
        local.set_style(style_images()[0])
        outputs.append(local(frames).astype(np.int16))
    # fp16 convolutions: a few grey levels apart at most on average.
    assert np.abs(outputs[0] - outputs[1]).mean() < 3


def test_device_and_precision_resolution() -> None:
    from adaattn_video.stylizer import (
        StylizerSettingError,
        cpu_has_fast_bf16,
        resolve_device,
        resolve_precision,
    )

    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(StylizerSettingError, match="precision"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(StylizerSettingError, match="device"):
        resolve_device("gpu0")
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(StylizerSettingError, match="CUDA is not available"):
            resolve_device("cuda")
