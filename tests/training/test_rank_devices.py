"""``cuda:N`` under torchrun (each local rank its own GPU) and inside Ray actors (one visible
GPU), with the CUDA device count monkeypatched: no GPU needed."""

from __future__ import annotations

import pytest
import torch

from adaattn_video.settings import StylizerSettingError, resolve_device
from training.distributed import resolve_device as rank_device


@pytest.fixture
def gpus(monkeypatch):
    def set_count(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return set_count


def test_each_rank_gets_its_own_gpu_from_the_first_index(gpus) -> None:
    gpus(4)
    assert [rank_device("cuda:1", r, 2) for r in (0, 1)] == [
        torch.device("cuda", 1),
        torch.device("cuda", 2),
    ]
    assert rank_device("cuda", 3, 4) == torch.device("cuda", 3)
    assert rank_device("cuda:1") == torch.device("cuda", 1)  # one process: as given


def test_ranks_that_see_one_gpu_each_use_it(gpus, monkeypatch) -> None:
    gpus(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert rank_device("cuda:1", 1, 2) == torch.device("cuda", 0)


def test_too_few_gpus_for_the_ranks_is_a_one_line_error(gpus) -> None:
    gpus(2)
    with pytest.raises(StylizerSettingError, match="local rank 1 would train on cuda:2"):
        rank_device("cuda:1", 1, 2)


def test_the_hint_names_cuda_visible_devices(gpus, monkeypatch) -> None:
    gpus(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(StylizerSettingError, match="CUDA_VISIBLE_DEVICES='3'"):
        resolve_device("cuda:1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(StylizerSettingError) as err:
        resolve_device("cuda:1")
    assert "CUDA_VISIBLE_DEVICES" not in str(err.value)
