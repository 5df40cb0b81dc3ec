"""The two published architectures: layouts, fast vs published formulation, batching, styles."""

from __future__ import annotations

import pytest
import torch
import torchvision
from helpers.numeric import FP32_REORDER_TOLERANCE, relative_error

from adaattn_video.config import IMAGE_MODEL, ModelConfig
from adaattn_video.encoder import VGGEncoder
from adaattn_video.model import ImageAdaAttN, VideoAdaAttN, build_model, init_untrained_

NORMALISED_CONV_INDICES = [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42]


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _model(config: ModelConfig, seed: int = 0) -> torch.nn.Module:
    return init_untrained_(build_model(config), seed).eval()


def test_normalised_encoder_layout_matches_published_indices() -> None:
    encoder = VGGEncoder("vgg_normalised", deepest="relu5_1")
    weights = sorted(int(k.split(".")[0]) for k in encoder.state_dict() if k.endswith("weight"))
    assert weights == NORMALISED_CONV_INDICES
    assert encoder.tap_index == {
        "relu1_1": 3,
        "relu2_1": 10,
        "relu3_1": 17,
        "relu4_1": 30,
        "relu5_1": 43,
    }
    video_encoder = VGGEncoder("vgg_normalised", deepest="relu3_1")
    assert len(video_encoder) == 18  # idx 0..17 only
    assert 0.55e6 < sum(p.numel() for p in video_encoder.parameters()) < 0.57e6


def test_encoder_is_frozen_and_stays_in_eval_mode() -> None:
    encoder = VGGEncoder()
    encoder.train()
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.slow
def test_torchvision_family_equals_torchvision_vgg19_features() -> None:
    """Same weights -> same taps as torchvision's own vgg19 (ImageNet normalisation included)."""
    torch.manual_seed(0)
    reference = torchvision.models.vgg19().features.eval()
    encoder = VGGEncoder("torchvision_vgg19", deepest="relu4_1")
    own = encoder.state_dict()
    encoder.load_state_dict({k: v for k, v in reference.state_dict().items() if k in own})
    images = _images((1, 3, 37, 45), 1)
    taps = encoder(images)
    x = torchvision.transforms.functional.normalize(
        images, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    )
    expected = {}
    with torch.no_grad():
        for i, layer in enumerate(reference):
            x = layer(x)
            if i in (1, 6, 11, 20):
                expected[i] = x
            if i == 20:
                break
    for name, index in (("relu1_1", 1), ("relu2_1", 6), ("relu3_1", 11), ("relu4_1", 20)):
        torch.testing.assert_close(taps[name], expected[index])


def test_published_key_layout_of_both_models() -> None:
    video = VideoAdaAttN().state_dict()
    assert video["transformer.f.weight"].shape == (448, 448, 1, 1)
    assert video["transformer.h.weight"].shape == (256, 256, 1, 1)
    decoder = sorted(
        int(k.split(".")[1]) for k in video if k.startswith("decoder.") and k.endswith("weight")
    )
    assert decoder == [1, 4, 7, 10, 14, 17, 21, 24]
    image = ImageAdaAttN().state_dict()
    assert image["transformer.attn_adain_4_1.f.weight"].shape == (960, 960, 1, 1)
    assert image["transformer.attn_adain_5_1.g.weight"].shape == (1472, 1472, 1, 1)
    assert image["transformer.merge_conv.weight"].shape == (512, 512, 3, 3)
    assert image["adaattn_3.f.weight"].shape == (448, 448, 1, 1)
    assert image["decoder.decoder_layer_2.1.weight"].shape == (256, 512, 3, 3)


@pytest.mark.parametrize(
    ("config", "content_hw", "style_hw"),
    [
        (ModelConfig(), (32, 48), (40, 36)),
        (ModelConfig(), (36, 52), (37, 41)),
        (ModelConfig(attention="softmax"), (36, 44), (29, 53)),
        (IMAGE_MODEL, (48, 80), (64, 48)),
        (ModelConfig(encoder_family="torchvision_vgg19"), (28, 40), (32, 32)),
    ],
)
def test_fast_path_matches_published_formulation(config, content_hw, style_hw) -> None:
    model = _model(config)
    if config.attention == "softmax":
        # He-initialised f and g give logits in the hundreds: a one-hot softmax where
        # E[V^2] - M^2 is 0 up to rounding and its sqrt amplifies fp32 noise in BOTH forms.
        # Scaling them down gives logits of order 1-10, the regime the comparison is about.
        with torch.no_grad():
            for attn in model.attention_levels().values():
                attn.f.weight.mul_(0.05)
                attn.g.weight.mul_(0.05)
    content, style = _images((2, 3, *content_hw), 2), _images((1, 3, *style_hw), 3)
    fast = model.stylize(content, [model.encode_style(style)])
    reference = model.forward_reference(content, style)
    assert fast.shape == content.shape
    assert relative_error(fast, reference) < FP32_REORDER_TOLERANCE


@pytest.mark.slow
def test_batch_equals_frame_by_frame_and_cached_style_equals_recomputed() -> None:
    model = _model(ModelConfig())
    content, style = _images((3, 3, 32, 40), 4), _images((1, 3, 48, 48), 5)
    cached = model.encode_style(style)
    batch = model.stylize(content, [cached])
    for i in range(3):
        recomputed = model.encode_style(style)
        single = model.stylize(content[i : i + 1], [recomputed])
        torch.testing.assert_close(batch[i : i + 1], single, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_style_mix_weights() -> None:
    model = _model(ModelConfig())
    content = _images((1, 3, 32, 32), 6)
    first, second = (
        model.encode_style(_images((1, 3, 32, 32), 7)),
        model.encode_style(_images((1, 3, 40, 24), 8)),
    )
    only_first = model.stylize(content, [first])
    torch.testing.assert_close(model.stylize(content, [first, second], [1.0, 0.0]), only_first)
    torch.testing.assert_close(model.stylize(content, [first, first], [0.5, 0.5]), only_first)
    mixed = model.stylize(content, [first, second], [0.5, 0.5])
    assert not torch.allclose(mixed, only_first)


def test_alpha_zero_ignores_the_style_and_alpha_one_does_not() -> None:
    model = _model(ModelConfig())
    content = _images((1, 3, 32, 32), 9)
    styles = [model.encode_style(_images((1, 3, 32, 32), s)) for s in (10, 11)]
    zero = [model.stylize(content, [s], alpha=0.0) for s in styles]
    one = [model.stylize(content, [s], alpha=1.0) for s in styles]
    torch.testing.assert_close(zero[0], zero[1])
    assert not torch.allclose(one[0], one[1])


def test_training_forward_has_gradients_only_outside_the_encoder() -> None:
    model = _model(ModelConfig())
    model.train()
    out = model(_images((2, 3, 32, 32), 12), _images((2, 3, 32, 32), 13))
    out.mean().backward()
    assert model.transformer.f.weight.grad is not None
    assert model.decoder[1].weight.grad is not None
    assert all(p.grad is None for p in model.encoder.parameters())


def test_bfloat16_compute_is_close_to_float32() -> None:
    model = _model(ModelConfig())
    content, style = _images((1, 3, 32, 32), 14), _images((1, 3, 32, 32), 15)
    reference = model.stylize(content, [model.encode_style(style)])
    model.set_compute_dtype(torch.bfloat16)
    low = model.stylize(content, [model.encode_style(style)]).float()
    # bf16 keeps 8 mantissa bits: a few percent of the output range through 14 conv layers.
    assert relative_error(low, reference) < 0.1


def test_model_rejects_wrong_inputs() -> None:
    model = _model(ModelConfig())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.encode_style(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="variant"):
        VideoAdaAttN(IMAGE_MODEL)
    with pytest.raises(ValueError, match="encoder_family"):
        ModelConfig(encoder_family="resnet")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_precision_matches_cpu_float32() -> None:
    model = _model(ModelConfig())
    content, style = _images((2, 3, 64, 96), 16), _images((1, 3, 64, 64), 17)
    reference = model.stylize(content, [model.encode_style(style)])
    model.cuda().set_compute_dtype(torch.float16)
    fast = model.stylize(content.cuda(), [model.encode_style(style.cuda())]).float().cpu()
    # fp16 convolutions (10 mantissa bits), fp32 attention: within 2 % of the range.
    assert relative_error(fast, reference) < 0.02


@pytest.mark.parametrize("config", [ModelConfig(), IMAGE_MODEL])
def test_channels_last_layout_gives_the_same_output(config: ModelConfig) -> None:
    model = _model(config)
    content, style = _images((2, 3, 48, 64), 18), _images((1, 3, 48, 48), 19)
    reference = model.stylize(content, [model.encode_style(style)])
    model.set_compute_dtype(torch.float32, channels_last=True)
    fast = model.stylize(content, [model.encode_style(style)])
    # Other convolution kernels sum in another order: float rounding only (amplified a little
    # by the sqrt of the attention-weighted variance where the random softmax is near one-hot).
    assert relative_error(fast, reference) < FP32_REORDER_TOLERANCE
