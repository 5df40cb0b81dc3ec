"""The training objective (AdaAttN paper, Liu et al. ICCV 2021, sections 3.3-3.4, and its video variant's image-similarity loss) and the pair perturbation, on constructed
cases: each term is zero where its formula says it must be, positive and differentiable
otherwise, and invariant where the formula is."""

from __future__ import annotations

import pytest
import torch

from adaattn_video.attention import adaptive_attention_norm
from adaattn_video.config import TAPS
from adaattn_video.encoder import VGGEncoder
from adaattn_video.functional import attention_key
from training.losses import (
    STYLE_TAPS,
    LossTerms,
    LossWeights,
    StyleTransferLoss,
    content_loss,
    global_style_loss,
    image_similarity_loss,
    local_feature_loss,
    local_feature_targets,
    random_encoder_,
    sample_positions,
)
from training.pairs import PairConfig, PairParams, apply_params, perturbed_view

pytestmark = pytest.mark.usefixtures("one_torch_thread")


CHANNELS = {"relu1_1": 8, "relu2_1": 8, "relu3_1": 16, "relu4_1": 16, "relu5_1": 16}


def features(
    batch: int, size: int = 32, seed: int = 0, grad: bool = False
) -> dict[str, torch.Tensor]:
    """Random non-negative (post-ReLU-like) taps at VGG scales: relu1_1 at ``size``, halving."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for level, name in enumerate(TAPS):
        side = size >> level
        tap = torch.rand(batch, CHANNELS[name], side, side, generator=generator) + 0.1
        out[name] = tap.requires_grad_(grad)
    return out


@pytest.fixture(scope="module")
def encoder() -> VGGEncoder:
    return random_encoder_(VGGEncoder("vgg_normalised", deepest="relu5_1"))


# -- global style loss ---------------------------------------------------------------------------
def test_global_style_loss_is_zero_for_the_style_itself() -> None:
    style = features(2)
    assert float(global_style_loss(style, style)) == 0.0


def test_global_style_loss_is_positive_and_differentiable() -> None:
    output, style = features(2, seed=1, grad=True), features(2, seed=2)
    loss = global_style_loss(output, style)
    assert loss > 0
    loss.backward()
    assert all(output[t].grad is not None and output[t].grad.abs().sum() > 0 for t in STYLE_TAPS)
    assert output["relu1_1"].grad is None, "relu1_1 is not a style tap"


def test_global_style_loss_ignores_where_features_are() -> None:
    # Only per-channel statistics enter: shuffling positions changes nothing.
    output, style = features(2, seed=1), features(2, seed=2)
    shuffled = {}
    for name, tap in output.items():
        b, c, h, w = tap.shape
        order = torch.randperm(h * w, generator=torch.Generator().manual_seed(3))
        shuffled[name] = tap.flatten(2)[..., order].view(b, c, h, w)
    torch.testing.assert_close(global_style_loss(shuffled, style), global_style_loss(output, style))


def test_one_style_serves_both_views() -> None:
    output, style = features(4, seed=1), features(2, seed=2)
    repeated = {k: torch.cat([v, v]) for k, v in style.items()}
    torch.testing.assert_close(
        global_style_loss(output, style), global_style_loss(output, repeated)
    )
    with pytest.raises(ValueError, match="must divide"):
        global_style_loss(features(3), style)


# -- local feature loss ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cosine", "softmax"])
def test_local_feature_targets_match_the_quadratic_reference(kind: str) -> None:
    content, style = features(2, seed=1), features(1, seed=2)
    targets = local_feature_targets(content, style, kind)  # type: ignore[arg-type]
    assert list(targets) == list(STYLE_TAPS)
    for tap in STYLE_TAPS:
        levels = TAPS[: TAPS.index(tap) + 1]
        reference = adaptive_attention_norm(
            kind,  # type: ignore[arg-type]
            content[tap],
            style[tap].expand(2, -1, -1, -1),
            attention_key([content[n] for n in levels]),
            attention_key([style[n] for n in levels]).expand(2, -1, -1, -1),
            quadratic=True,
        )
        # Tolerance: the fast paths sum in another order than the score matrix, and
        # std = sqrt(E[V^2] - M^2) amplifies float32 rounding where the spread is small.
        torch.testing.assert_close(targets[tap], reference, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["cosine", "softmax"])
def test_local_feature_loss_zero_at_its_target_positive_elsewhere(kind: str) -> None:
    content, style = features(2, seed=1), features(2, seed=2)
    targets = local_feature_targets(content, style, kind)  # type: ignore[arg-type]
    assert float(local_feature_loss(targets, targets)) == 0.0
    output = features(2, seed=3, grad=True)
    loss = local_feature_loss(output, targets)
    assert loss > 0
    loss.backward()
    assert output["relu5_1"].grad.abs().sum() > 0
    assert all(not t.requires_grad for t in targets.values()), "targets must not carry gradient"


# -- content loss ----------------------------------------------------------------------------------
def test_content_loss_zero_for_the_content_and_ignores_channel_scale_and_shift() -> None:
    content = features(2, seed=1)
    assert float(content_loss(content, content)) == 0.0
    gain = torch.rand(1, 16, 1, 1, generator=torch.Generator().manual_seed(4)) + 0.5
    affine = {k: v * gain[:, : v.shape[1]] + 3.0 for k, v in content.items()}
    # Not exactly zero: norm() adds 1e-5 to the variance, which the gain scales differently.
    assert float(content_loss(affine, content)) < 1e-3
    output = features(2, seed=2, grad=True)
    loss = content_loss(output, content)
    assert loss > 0.5
    loss.backward()
    assert output["relu2_1"].grad.abs().sum() > 0


# -- image-similarity loss -------------------------------------------------------------------------
def test_image_similarity_zero_when_outputs_equal_contents() -> None:
    first, second = features(2, seed=1), features(2, seed=2)
    taps = ("relu3_1", "relu4_1")
    assert float(image_similarity_loss(first, second, first, second, taps)) == 0.0


def test_image_similarity_ignores_feature_length() -> None:
    # Cosine distance: scaling each output position by a positive factor changes nothing.
    first, second = features(2, seed=1), features(2, seed=2)
    generator = torch.Generator().manual_seed(5)
    scaled = [
        {
            k: v * (torch.rand(v.shape[0], 1, *v.shape[2:], generator=generator) + 0.2)
            for k, v in f.items()
        }
        for f in (first, second)
    ]
    loss = image_similarity_loss(first, second, *scaled, ("relu3_1",))
    assert float(loss) < 1e-6


def test_image_similarity_positive_bounded_and_differentiable() -> None:
    first, second = features(2, seed=1), features(2, seed=2)
    out1, out2 = features(2, seed=3, grad=True), features(2, seed=4, grad=True)
    loss = image_similarity_loss(first, second, out1, out2, ("relu3_1",))
    assert 0 < float(loss.detach()) <= 2.0
    loss.backward()
    assert out1["relu3_1"].grad.abs().sum() > 0 and out2["relu3_1"].grad.abs().sum() > 0


def test_image_similarity_subsampling_is_seeded_and_exact_below_the_limit() -> None:
    first, second = features(2, seed=1), features(2, seed=2)
    out1, out2 = features(2, seed=3), features(2, seed=4)
    args = (first, second, out1, out2, ("relu3_1",))  # 8x8 = 64 positions

    def subsampled(seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        return float(image_similarity_loss(*args, max_positions=16, generator=generator))

    assert subsampled(0) == subsampled(0)
    assert subsampled(0) != subsampled(1)
    full = float(image_similarity_loss(*args, max_positions=64))
    assert full == float(image_similarity_loss(*args, max_positions=10_000))
    assert sample_positions(64, 64, None, torch.device("cpu")) is None
    grid = sample_positions(64, 16, None, torch.device("cpu"))
    assert grid is not None and grid.unique().numel() == 16


# -- the whole objective ---------------------------------------------------------------------------
def _values(terms: LossTerms) -> dict[str, float]:
    """The terms as numbers, read the way the trainer reads them (``stacked``)."""
    names = ("total", "style", "local", "content", "similarity")
    return dict(zip(names, terms.stacked().tolist(), strict=True))


def test_objective_weights_and_pairs(encoder: VGGEncoder) -> None:
    generator = torch.Generator().manual_seed(0)
    contents = torch.rand(4, 3, 32, 32, generator=generator)
    styles = torch.rand(2, 3, 32, 32, generator=generator)
    outputs = torch.rand(4, 3, 32, 32, generator=generator, requires_grad=True)
    weights = LossWeights(style=10, local=3, content=1, similarity=100)
    terms = StyleTransferLoss(encoder, weights)(outputs, contents, styles, pairs=True)
    values = _values(terms)
    assert all(values[k] > 0 for k in ("style", "local", "content", "similarity"))
    total = values["style"] + values["local"] + values["content"] + values["similarity"]
    assert values["total"] == pytest.approx(total, rel=1e-6)
    terms.total.backward()
    assert outputs.grad is not None and outputs.grad.abs().sum() > 0

    off = StyleTransferLoss(encoder, LossWeights(style=1, local=0, content=0, similarity=100))
    unpaired = _values(off(outputs.detach(), contents, styles, pairs=False))
    assert unpaired["local"] == unpaired["content"] == unpaired["similarity"] == 0.0
    assert unpaired["total"] == unpaired["style"] > 0


def test_objective_of_the_style_image_itself(encoder: VGGEncoder) -> None:
    # The output IS the style image, and the two views are identical: global style loss and
    # image-similarity loss must both vanish.
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss = StyleTransferLoss(encoder, LossWeights(style=10, local=0, content=0, similarity=100))
    pair = torch.cat([style, style])
    terms = _values(loss(pair, pair, style, pairs=True))
    # Not bit-exact: the encoder runs the style at batch 1 and the outputs at batch 2, and the
    # convolution kernels round differently per batch size.
    assert terms["style"] == pytest.approx(0.0, abs=1e-8)
    assert terms["similarity"] == pytest.approx(0.0, abs=1e-8)


def test_loss_encoder_must_reach_relu5_1() -> None:
    with pytest.raises(ValueError, match="relu5_1"):
        StyleTransferLoss(VGGEncoder("vgg_normalised", deepest="relu3_1"), LossWeights())


# -- pairs -----------------------------------------------------------------------------------------
def smooth_images(batch: int, size: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x) * torch.cos(4 * y)])
    return image.expand(batch, -1, -1, -1).clone()


def test_perturbed_view_is_seeded_small_and_in_range() -> None:
    images = smooth_images(3)
    first, params = perturbed_view(images, PairConfig(), torch.Generator().manual_seed(7))
    again, _ = perturbed_view(images, PairConfig(), torch.Generator().manual_seed(7))
    other, _ = perturbed_view(images, PairConfig(), torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    assert 0 < (first - images).abs().mean() < 0.08  # a small change of a smooth image
    assert params.translation.abs().max() <= 0.03 * 48 + 1e-6
    assert (params.angle_deg.abs() <= 3.0).all() and ((params.scale - 1).abs() <= 0.05).all()


def test_pair_params_identity_and_integer_shift_are_exact() -> None:
    images = smooth_images(2)
    zero = torch.zeros(2)
    identity = PairParams(torch.zeros(2, 2), torch.ones(2), zero, zero, noise_seed=0)
    # Tolerance: the warp's bilinear sampling at integer positions rounds at float32 epsilon.
    torch.testing.assert_close(apply_params(images, identity, 0.0), images, atol=1e-5, rtol=0)
    shift = PairParams(torch.tensor([[3.0, 0.0], [0.0, 2.0]]), torch.ones(2), zero, zero, 0)
    moved = apply_params(images, shift, 0.0)
    torch.testing.assert_close(moved[0, :, :, 3:], images[0, :, :, :-3], atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[1, :, 2:, :], images[1, :, :-2, :], atol=1e-5, rtol=0)


def test_pair_config_is_checked() -> None:
    with pytest.raises(ValueError, match="rotation_deg"):
        PairConfig(rotation_deg=90)
    with pytest.raises(ValueError, match="shift"):
        PairConfig(shift=-0.1)
