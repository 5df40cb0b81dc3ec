"""Content pairs for the image-similarity loss (the video variant's image-similarity loss of the AdaAttN repository).

Two views of one scene: either consecutive video frames (from the data loader), or a photo and
a slightly perturbed copy of it (small shift, scale, rotation, brightness change and noise),
made here on the training device with kornia's geometry and enhancement kernels.

Why not ``kornia.augmentation.RandomAffine``: its modules draw their parameters from torch's
global RNG. Here every parameter is drawn from an explicit ``torch.Generator`` that the trainer
seeds from (seed, step, rank), so a resumed run perturbs its images exactly like the
uninterrupted run, and nothing else in the process changes the draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.enhance import adjust_brightness
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import Tensor


@dataclass(frozen=True)
class PairConfig:
    """Ranges of the perturbation (each drawn uniformly in [-max, max] per image).

    Attributes:
        shift: translation as a fraction of the image side.
        scale: relative zoom (0.05 = 0.95x .. 1.05x).
        rotation_deg: rotation in degrees.
        brightness: additive brightness change in [0, 1] intensity units.
        noise_std: standard deviation of added Gaussian noise (always >= 0).
    """

    shift: float = 0.03
    scale: float = 0.05
    rotation_deg: float = 3.0
    brightness: float = 0.05
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("shift", "scale", "brightness", "noise_std"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"{name} must be in [0, 0.5], got {value}")
        if not 0.0 <= self.rotation_deg <= 45.0:
            raise ValueError(f"rotation_deg must be in [0, 45], got {self.rotation_deg}")


@dataclass(frozen=True)
class PairParams:
    """The drawn perturbation of a batch: (B, 2) shift in pixels (x, y), (B,) scale,
    (B,) angle in degrees, (B,) brightness offset, and the seed of the noise."""

    translation: Tensor
    scale: Tensor
    angle_deg: Tensor
    brightness: Tensor
    noise_seed: int


def draw_params(
    batch: int, height: int, width: int, config: PairConfig, generator: torch.Generator
) -> PairParams:
    """Draw one perturbation per image from ``generator`` (a CPU generator)."""

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator) * 2.0 - 1.0

    side = torch.tensor([width, height], dtype=torch.float32)
    return PairParams(
        translation=uniform(batch, 2) * config.shift * side,
        scale=1.0 + uniform(batch) * config.scale,
        angle_deg=uniform(batch) * config.rotation_deg,
        brightness=uniform(batch) * config.brightness,
        noise_seed=int(torch.randint(0, 2**62, (1,), generator=generator)),
    )


def affine_matrices(params: PairParams, height: int, width: int) -> Tensor:
    """(B, 2, 3) matrices mapping source pixel coordinates to view coordinates."""
    b = params.scale.shape[0]
    center = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0]).expand(b, 2)
    scale = params.scale.unsqueeze(1).expand(b, 2)
    return get_affine_matrix2d(params.translation, center, scale, params.angle_deg)[:, :2]


def apply_params(images: Tensor, params: PairParams, noise_std: float) -> Tensor:
    """Apply a drawn perturbation. images (B, 3, H, W) in [0, 1] -> same shape, clamped.

    The affine warp samples bilinearly with reflection at the borders (no black corners, which
    would be a spurious difference between the views); noise comes from a generator on the
    images' device seeded with ``params.noise_seed``.
    """
    h, w = images.shape[-2:]
    matrices = affine_matrices(params, h, w).to(images.device, images.dtype)
    out = warp_affine(images, matrices, (h, w), padding_mode="reflection", align_corners=True)
    out = adjust_brightness(out, params.brightness.to(images.device, images.dtype))
    if noise_std > 0:
        noise_generator = torch.Generator(device=images.device).manual_seed(params.noise_seed)
        noise = torch.randn(
            out.shape, generator=noise_generator, device=images.device, dtype=images.dtype
        )
        out = out + noise * noise_std
    return out.clamp(0.0, 1.0)


def perturbed_view(
    images: Tensor, config: PairConfig, generator: torch.Generator
) -> tuple[Tensor, PairParams]:
    """A second view of each image. images (B, 3, H, W) in [0, 1] -> (B, 3, H, W), params."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    b, _, h, w = images.shape
    params = draw_params(b, h, w, config, generator)
    return apply_params(images, params, config.noise_std), params
