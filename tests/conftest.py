"""Shared pytest fixtures (keep this small; shared helper functions live in tests/helpers/)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module (restored after). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``: at the tiny sizes of the tests
    a second thread gains nothing, and on a shared 2-core machine OpenMP threads that spin
    against other processes make every op many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model():
    """The deterministic untrained video model (``open_model(None, untrained=True)``, fp32 on
    the CPU): the real architecture with the same random weights in every run. Shared by the
    session: stylize with it, never change its weights, dtype or device (build your own)."""
    from adaattn_video.checkpoint import open_model

    return open_model(None, untrained=True)


@pytest.fixture(scope="session")
def untrained_stylizer(model):
    """A CPU :class:`FrameStylizer` with :func:`model` and a small random style (32 px). Shared
    by the session: do not change its style or alpha (build your own for that)."""
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    stylizer = FrameStylizer(model, StylizerConfig(device="cpu"))
    style = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    stylizer.set_style(style)
    return stylizer


@pytest.fixture
def clip_with_audio(tmp_path):
    """A 24-frame 64x64 H.264 clip at 24 fps (B-frames on) with a mono AAC sine track."""
    from helpers.media import write_clip

    return write_clip(tmp_path / "clip.mp4", frames=24, size=(64, 64), fps=24, audio=True)
