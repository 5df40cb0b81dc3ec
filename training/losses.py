"""The training objective (AdaAttN paper, Liu et al. ICCV 2021, sections 3.3-3.4, and its video variant's image-similarity loss), one documented function per term.

All terms compare taps of a frozen VGG ("the loss encoder", relu1_1 .. relu5_1) of the output
``cs``, the content ``c`` and the style ``s``. Features are dicts ``{"relu2_1": (B, C, H, W),
...}``. Every term is computed in float32 (outside autocast): means, variances and cosine
distances cancel badly in half precision.

Style features may hold fewer samples than the outputs when one style batch serves several
content batches (the two views of a pair are stylised with the same styles): a style batch of
size S is repeated to the outputs' batch size B (B must be a multiple of S, order ``[s; s]``).

Departures from the published code, all deliberate:
    * The local feature loss's AdaAttN* never subsamples style positions (the reference draws
      64*64 of them at random per step); the cosine form is exact in linear time and the softmax
      form is exact and fused.
    * The image-similarity loss samples positions with an explicit generator (or a fixed grid),
      never the global RNG.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaattn_video.attention import adaptive_attention_norm
from adaattn_video.config import TAPS, AttentionKind, EncoderFamily
from adaattn_video.encoder import VGGEncoder
from adaattn_video.functional import attention_key, mean_std, mean_variance_norm

log = logging.getLogger(__name__)

Features = Mapping[str, Tensor]

STYLE_TAPS: tuple[str, ...] = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")
RANDOM_ENCODER_SEED = 0  # every random-encoder run uses the same encoder (comparable runs)
_COSINE_EPS = 1e-8
_COLUMN_EPS = 1e-8


def random_encoder_(encoder: VGGEncoder) -> VGGEncoder:
    """Fill a VGG with He-normal random weights (zero biases), so activations keep their scale
    through 13 layers. Deterministic (:data:`RANDOM_ENCODER_SEED`)."""
    generator = torch.Generator().manual_seed(RANDOM_ENCODER_SEED)
    with torch.no_grad():
        for m in encoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)
    return encoder


def load_loss_encoder(
    family: EncoderFamily, weights: str | Path | None, *, allow_random: bool = False
) -> tuple[VGGEncoder, str]:
    """The frozen VGG to relu5_1 the losses look through, and where its weights came from.

    ``weights``: vgg_normalised.pth, or a torchvision vgg19 file; None with the torchvision family
    uses torchvision's weights API (online or its cache). None with ``allow_random``: a random
    encoder with a loud warning (tests and benchmarks; such losses mean nothing).
    """
    encoder = VGGEncoder(family, deepest="relu5_1")
    if weights is None and allow_random:
        log.warning(
            "RANDOM LOSS ENCODER (allow_random_encoder): the losses look through a random VGG; "
            "a model trained with it is NOT a style-transfer model (tests and benchmarks only)"
        )
        return random_encoder_(encoder), "random (allow_random_encoder)"
    from adaattn_video.weights import load_encoder_weights

    load_encoder_weights(encoder, weights)
    return encoder, str(weights or "torchvision VGG19_Weights.IMAGENET1K_V1")


def _no_autocast(tensor: Tensor) -> torch.autocast:
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def _repeat_to(features: Tensor, batch: int) -> Tensor:
    """(S, ...) -> (batch, ...) by repeating the whole batch (``[s; s]``); S must divide batch."""
    s = features.shape[0]
    if s == batch:
        return features
    if batch % s:
        raise ValueError(f"style batch {s} must divide the output batch {batch}")
    return features.repeat(batch // s, *([1] * (features.ndim - 1)))


def global_style_loss(
    output: Features, style: Features, taps: Sequence[str] = STYLE_TAPS
) -> Tensor:
    """Global style loss (AdaIN/AdaAttN, AdaAttN paper, section 3.3).

        L_gs = sum_l MSE(mean(cs_l), mean(s_l)) + MSE(std(cs_l), std(s_l))

    mean/std are per sample and channel over positions (std = sqrt(unbiased var + 1e-5), as
    in the reference code). Zero when the output's statistics equal the style's at every tap;
    invariant to any rearrangement of positions (it only sees per-channel statistics).

    Returns: a scalar float32 tensor.
    """
    loss = output[taps[0]].new_zeros((), dtype=torch.float32)
    with _no_autocast(loss):
        for tap in taps:
            cs = output[tap].float()
            out_mean, out_std = mean_std(cs)
            style_mean, style_std = mean_std(style[tap].float())
            style_mean = _repeat_to(style_mean, cs.shape[0])
            style_std = _repeat_to(style_std, cs.shape[0])
            loss = loss + F.mse_loss(out_mean, style_mean) + F.mse_loss(out_std, style_std)
    return loss


@torch.no_grad()
def local_feature_targets(
    content: Features,
    style: Features,
    kind: AttentionKind,
    taps: Sequence[str] = STYLE_TAPS,
) -> dict[str, Tensor]:
    """The local feature loss's targets ``AdaAttN*(c_l, s_l)`` at every tap (no gradient).

    AdaAttN* is the parameter-free attention normalization (no f/g/h: the keys are used as
    query and key directly) of the variant being trained, ``kind`` = "cosine" (the cosine form of the published video model) or
    "softmax" (the paper's form). Keys are the shallow+deep keys of AdaAttN paper, section 3.2 up to each tap.

    Args: content features (B, ...), style features (S, ...) with S dividing B.
    Returns: ``{tap: (B, C_l, H_l, W_l) float32}``.
    """
    targets = {}
    first = content[taps[0]]
    with _no_autocast(first):
        for tap in taps:
            levels = TAPS[: TAPS.index(tap) + 1]
            content_key = attention_key([content[name] for name in levels])
            style_key = attention_key([style[name] for name in levels])
            b = content[tap].shape[0]
            targets[tap] = adaptive_attention_norm(
                kind,
                content[tap].float(),
                _repeat_to(style[tap].float(), b),
                content_key,
                _repeat_to(style_key, b),
            )
    return targets


def local_feature_loss(output: Features, targets: Mapping[str, Tensor]) -> Tensor:
    """Local feature loss (AdaAttN, AdaAttN paper, section 3.3).

        L_lf = sum_l MSE(cs_l, AdaAttN*(c_l, s_l))

    with the targets of :func:`local_feature_targets`. Zero when the output's features equal
    the attention-normalised content features at every tap.

    Returns: a scalar float32 tensor.
    """
    taps = list(targets)
    loss = output[taps[0]].new_zeros((), dtype=torch.float32)
    with _no_autocast(loss):
        for tap in taps:
            loss = loss + F.mse_loss(output[tap].float(), targets[tap])
    return loss


def content_loss(output: Features, content: Features, taps: Sequence[str] = STYLE_TAPS) -> Tensor:
    """Content loss (optional; weight 0 in the reference run).

        L_c = sum_l MSE(norm(cs_l), norm(c_l))

    norm = per-channel mean-variance normalization, so the loss ignores each channel's mean
    and scale: zero for cs = c, and unchanged when the output's features are shifted or
    scaled (positively) per channel.

    Returns: a scalar float32 tensor.
    """
    loss = output[taps[0]].new_zeros((), dtype=torch.float32)
    with _no_autocast(loss):
        for tap in taps:
            loss = loss + F.mse_loss(
                mean_variance_norm(output[tap].float()), mean_variance_norm(content[tap].float())
            )
    return loss


def sample_positions(
    count: int, max_positions: int, generator: torch.Generator | None, device: torch.device
) -> Tensor | None:
    """Indices of at most ``max_positions`` of ``count`` positions, or None for all of them.

    With a generator: a random subset drawn from it (the trainer seeds it per step, so every
    position is supervised over a run and a resumed run draws the same subsets). Without: an
    evenly spaced fixed subset.
    """
    if count <= max_positions:
        return None
    if generator is None:
        return torch.linspace(0, count - 1, max_positions, device=device).round().long()
    return torch.randperm(count, generator=generator)[:max_positions].sort().values.to(device)


def _column_normalised_distance(first: Tensor, second: Tensor) -> Tensor:
    """(B, C, N) x (B, C, N) -> (B, N, N): D[i, j] = 1 - cos(first_i, second_j), each column
    divided by its sum over i."""
    u = F.normalize(first, dim=1, eps=_COSINE_EPS)
    v = F.normalize(second, dim=1, eps=_COSINE_EPS)
    distance = 1.0 - torch.bmm(u.transpose(1, 2), v)
    return distance / (distance.sum(dim=1, keepdim=True) + _COLUMN_EPS)


def image_similarity_loss(
    content1: Features,
    content2: Features,
    output1: Features,
    output2: Features,
    taps: Sequence[str] = ("relu4_1",),
    *,
    max_positions: int = 1024,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Image-similarity loss (the video variant's image-similarity loss of the AdaAttN repository): keep the pairwise structure of a content pair.

    For each tap l and each pair (c1, c2) -> (cs1, cs2), over positions i, j:

        D_c[i, j]  = 1 - cos(c1_l[:, i], c2_l[:, j])
        D_cs[i, j] = 1 - cos(cs1_l[:, i], cs2_l[:, j])
        Dn = D / sum_i D[i, j]                        (each column sums to 1)
        L_is = (1 / n) * sum_{i,j} | Dn_c[i, j] - Dn_cs[i, j] |

    n = number of positions used; the result is averaged over the batch and summed over taps.
    Positions beyond ``max_positions`` are subsampled (the same indices for i and j and for
    content and output, see :func:`sample_positions`): the cost is quadratic in positions.

    Properties: zero when outputs equal contents; zero when the output features are the content
    features scaled by any positive per-position factors (cosine ignores length); unchanged
    when both views are swapped together. 0 <= L_is <= 2 per tap.

    Returns: a scalar float32 tensor.
    """
    first = content1[taps[0]]
    loss = first.new_zeros((), dtype=torch.float32)
    with _no_autocast(first):
        for tap in taps:
            b, c = content1[tap].shape[:2]
            flat = [f[tap].float().reshape(b, c, -1) for f in (content1, content2)]
            flat += [f[tap].float().reshape(b, f[tap].shape[1], -1) for f in (output1, output2)]
            count = flat[0].shape[-1]
            index = sample_positions(count, max_positions, generator, first.device)
            if index is not None:
                flat = [f.index_select(2, index) for f in flat]
            n = flat[0].shape[-1]
            d_content = _column_normalised_distance(flat[0], flat[1])
            d_output = _column_normalised_distance(flat[2], flat[3])
            loss = loss + (d_content - d_output).abs().sum(dim=(1, 2)).mean() / n
    return loss


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms (the published training options: 10 / 3 / 0 / 100). 0 skips a term."""

    style: float = 10.0
    local: float = 3.0
    content: float = 0.0
    similarity: float = 100.0

    def __post_init__(self) -> None:
        for name in ("style", "local", "content", "similarity"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} weight must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class LossTerms:
    """Weighted terms and their sum (scalar tensors; ``total`` carries the gradient)."""

    total: Tensor
    style: Tensor
    local: Tensor
    content: Tensor
    similarity: Tensor

    def stacked(self) -> Tensor:
        """(5,) detached float32: total, style, local, content, similarity (for all-reduce)."""
        return torch.stack(
            [
                t.detach().float()
                for t in (self.total, self.style, self.local, self.content, self.similarity)
            ]
        )


TERM_NAMES: tuple[str, ...] = ("total", "style", "local", "content", "similarity")


class StyleTransferLoss(nn.Module):
    """The whole objective around a frozen loss encoder (VGG to relu5_1).

    ``loss(outputs, contents, styles)`` where outputs and contents are (P*B, 3, H, W) (P = 2
    when the batch holds the two views of each pair: ``[view1; view2]``) and styles (B, 3, Hs,
    Ws), all in [0, 1]. Returns :class:`LossTerms`.
    """

    def __init__(
        self,
        encoder: VGGEncoder,
        weights: LossWeights,
        *,
        kind: AttentionKind = "cosine",
        similarity_taps: Sequence[str] = ("relu4_1",),
        similarity_max_positions: int = 1024,
    ) -> None:
        super().__init__()
        if encoder.deepest != "relu5_1":
            raise ValueError(f"the loss encoder must reach relu5_1, got {encoder.deepest}")
        self.encoder = encoder
        self.weights = weights
        self.kind = kind
        self.similarity_taps = tuple(similarity_taps)
        self.similarity_max_positions = similarity_max_positions

    def forward(
        self,
        outputs: Tensor,
        contents: Tensor,
        styles: Tensor,
        *,
        pairs: bool = False,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        w = self.weights
        out_feats = self.encoder(outputs)
        with torch.no_grad():
            content_feats = self.encoder(contents)
            style_feats = self.encoder(styles)
        zero = outputs.new_zeros((), dtype=torch.float32)
        style = global_style_loss(out_feats, style_feats) if w.style > 0 else zero
        local = zero
        if w.local > 0:
            targets = local_feature_targets(content_feats, style_feats, self.kind)
            local = local_feature_loss(out_feats, targets)
        content = content_loss(out_feats, content_feats) if w.content > 0 else zero
        similarity = zero
        if pairs and w.similarity > 0:
            half = outputs.shape[0] // 2

            def first(f: Features) -> dict[str, Tensor]:
                return {t: f[t][:half] for t in self.similarity_taps}

            def second(f: Features) -> dict[str, Tensor]:
                return {t: f[t][half:] for t in self.similarity_taps}

            similarity = image_similarity_loss(
                first(content_feats),
                second(content_feats),
                first(out_feats),
                second(out_feats),
                self.similarity_taps,
                max_positions=self.similarity_max_positions,
                generator=generator,
            )
        terms = [w.style * style, w.local * local, w.content * content, w.similarity * similarity]
        return LossTerms(sum(terms[1:], terms[0]), *terms)
