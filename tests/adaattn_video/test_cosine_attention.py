"""Kernel launches per frame on GPUs: the cosine attention's block size and the reflection pad
off the CPU, counted as aten calls on the ``meta`` device (no GPU needed)."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import adaattn_video.cosine_attention as cosine_attention
from adaattn_video.cosine_attention import BLOCK_POSITIONS, GPU_BLOCK_POSITIONS, block_positions


class _CountOps(TorchDispatchMode):
    """Counts every aten call (one kernel launch, or less, on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func)] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def meta_model():
    from adaattn_video.checkpoint import open_model

    model = open_model(None, untrained=True).to("meta")
    model.set_compute_dtype(torch.float16, channels_last=True)
    with torch.no_grad():
        style = model.encode_style(torch.empty(1, 3, 256, 256, device="meta"))
    return model, style


def _ops_per_frame(model, style, height: int, width: int) -> collections.Counter[str]:
    content = torch.empty(1, 3, height, width, device="meta")
    with torch.no_grad(), _CountOps() as counter:
        model.stylize(content, [style])
    return counter.calls


def test_block_size_depends_on_the_device() -> None:
    assert block_positions("cpu") == BLOCK_POSITIONS
    assert block_positions("cuda:1") == block_positions("mps") == GPU_BLOCK_POSITIONS


@pytest.mark.parametrize(("height", "width"), [(720, 1280), (1080, 1920)])
def test_a_gpu_frame_is_a_few_hundred_ops_at_most(meta_model, height: int, width: int) -> None:
    model, style = meta_model
    calls = _ops_per_frame(model, style, height, width)
    assert sum(calls.values()) < 200, calls.most_common(8)
    # one reflection pad per padded conv, not an empty + 5 copies
    assert calls["aten.reflection_pad2d.default"] >= 10
    assert calls["aten.copy_.default"] < 10


def test_cpu_sized_blocks_would_cost_a_thousand_ops(meta_model, monkeypatch) -> None:
    """The count above is the block size's doing: CPU-sized blocks at 720p are ~1000 ops."""
    model, style = meta_model
    monkeypatch.setattr(cosine_attention, "block_positions", lambda device: BLOCK_POSITIONS)
    assert sum(_ops_per_frame(model, style, 720, 1280).values()) > 600
