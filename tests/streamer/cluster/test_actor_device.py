"""A Ray GPU actor sees only its own GPU: ``--device cuda:1`` is ``cuda:0`` there."""

from __future__ import annotations

import pytest
import torch

from adaattn_video.settings import resolve_device
from streamer.cluster.worker import actor_device


def test_device_inside_an_actor() -> None:
    assert actor_device("cuda:1") == actor_device("cuda") == "cuda:0"
    assert actor_device("cpu") == "cpu" and actor_device("auto") == "auto"


def test_an_actor_with_one_visible_gpu_accepts_cuda_1(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # what Ray sets for the actor
    assert resolve_device(actor_device("cuda:1")) == "cuda:0"
    with pytest.raises(ValueError, match="sees 1 CUDA device"):
        resolve_device("cuda:1")  # what the actor did before
