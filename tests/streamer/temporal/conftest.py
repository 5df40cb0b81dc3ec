"""Clips with exactly known motion made from the bundled photos, and small real stylizers."""

from __future__ import annotations

import numpy as np
import pytest

from adaattn_video.assets import CONTENTS_DIR
from adaattn_video.image_io import read_image
from training.evaluate import ClipMotion, synthetic_clip


def photo(name: str = "tubingen.jpg") -> np.ndarray:
    """A bundled content photo, (512, 512, 3) uint8 RGB."""
    return read_image(CONTENTS_DIR / name).permute(1, 2, 0).numpy()


def pan_clip(
    name: str = "tubingen.jpg",
    *,
    frames: int = 8,
    size: tuple[int, int] = (48, 64),
    speed: float = 2.0,
) -> tuple[np.ndarray, ClipMotion]:
    """A camera panning ``speed`` pixels per frame over a bundled photo, with its exact flow."""
    return synthetic_clip(photo(name), frames=frames, size=size, motion="pan", speed=speed)


def new_stylizer(seed: int = 0):
    """A fresh CPU FrameStylizer (untrained video model, random 32 px style ``seed``): tests
    that switch styles or alpha need their own."""
    from adaattn_video.checkpoint import open_model
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    stylizer = FrameStylizer(open_model(None, untrained=True), StylizerConfig(device="cpu"))
    stylizer.set_style(random_style(seed))
    return stylizer


def random_style(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture
def clips():
    """The helpers above, for test modules (pytest imports this conftest, not as a module)."""

    class Clips:
        photo = staticmethod(photo)
        pan = staticmethod(pan_clip)
        stylizer = staticmethod(new_stylizer)
        style = staticmethod(random_style)

    return Clips
