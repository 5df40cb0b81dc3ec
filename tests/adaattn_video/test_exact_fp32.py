"""IEEE float32 on CUDA (TF32 off, restored after) and out-of-memory errors of every backend;
the switches are plain flags, so this runs without a GPU."""

from __future__ import annotations

import threading

import pytest
import torch

from adaattn_video.config import IMAGE_MODEL, ModelConfig
from adaattn_video.device_memory import free_cached_memory, is_out_of_memory
from adaattn_video.exact_fp32 import ieee_fp32, tf32_setting
from adaattn_video.model import IeeeFp32Encoder, build_model


@pytest.fixture
def tf32_on():
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    yield
    torch.backends.cudnn.allow_tf32 = saved[0]
    torch.set_float32_matmul_precision(saved[1])


def test_ieee_fp32_turns_tf32_off_and_restores_it(tf32_on) -> None:
    assert tf32_setting() == "fp32 conv TF32, matmul TF32"
    with ieee_fp32("cuda:1"):
        assert not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        assert tf32_setting() == "fp32 conv IEEE, matmul IEEE"
        with ieee_fp32():  # nested: the outer block still holds it
            pass
        assert not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high"


def test_ieee_fp32_leaves_other_devices_alone(tf32_on) -> None:
    with ieee_fp32("cpu"):
        assert torch.backends.cudnn.allow_tf32


def test_ieee_fp32_restores_after_overlapping_threads(tf32_on) -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with ieee_fp32("cuda"):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with ieee_fp32("cuda"):
        leave.set()  # the other thread leaves first: still off for this one
        thread.join(5)
        assert not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32


def test_only_the_softmax_image_model_gets_the_exact_encoder() -> None:
    assert isinstance(build_model(IMAGE_MODEL).encoder, IeeeFp32Encoder)
    assert not isinstance(build_model(ModelConfig()).encoder, IeeeFp32Encoder)


def test_out_of_memory_errors_of_cuda_and_mps() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    free_cached_memory("cpu")  # nothing to free, no error
