"""Small pure functions shared by the model, the losses and the tests."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-5


def mean_std(features: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and std over positions.

    Args:
        features: (B, C, H, W).

    Returns:
        mean, std: (B, C, 1, 1); std = sqrt(unbiased var + eps), as in the reference code.
    """
    b, c = features.shape[:2]
    flat = features.reshape(b, c, -1)
    var = flat.var(dim=2, unbiased=True) + eps
    return flat.mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)


def mean_variance_norm(features: Tensor) -> Tensor:
    """``norm(x)``, mean-variance normalisation: (x - mean_hw) / sqrt(unbiased var_hw + 1e-5). Shape kept (B, C, H, W)."""
    mean, std = mean_std(features)
    return (features - mean) / std


def attention_key(taps: list[Tensor]) -> Tensor:
    """The "shallow + deep" key of AdaAttN paper, section 3.2.

    Args:
        taps: features relu1_1 .. relu_L in order, each (B, C_i, H_i, W_i).

    Returns:
        (B, sum C_i, H_L, W_L): every tap resized (nearest) to the last one's size, then normalized.
        Computed in float32 whatever the input precision (the variance cancels badly in half).
    """
    size = taps[-1].shape[-2:]
    parts = []
    for tap in taps:
        if tap.shape[-2:] != size:  # nearest: exact in any dtype, so resize before the cast
            tap = F.interpolate(tap, size=size, mode="nearest")
        parts.append(mean_variance_norm(tap.float()))
    return torch.cat(parts, dim=1)


def tracing() -> bool:
    """True while torch.jit, torch.compile, torch.export or the ONNX exporter trace the model:
    shape-dependent fast paths then give way to the plain operators."""
    return (
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def reflection_pad_1(x: Tensor) -> Tensor:
    """``F.pad(x, (1, 1, 1, 1), mode="reflect")`` for (B, C, H, W) with H, W >= 2, same layout.

    PyTorch's reflection-pad kernel is slow on channels-last CPU tensors (5-6x slower than a
    copy, ~10 % of a bf16 frame); one strided copy of the interior and four thin copies of
    the borders give the same values at memory speed. Falls back to ``F.pad`` when tracing,
    exporting or differentiating, where the slice assignments would only get in the way, and
    off the CPU, where one pad kernel beats five copy launches.
    """
    if (
        x.device.type != "cpu"
        or x.ndim != 4
        or x.shape[-2] < 2
        or x.shape[-1] < 2
        or (torch.is_grad_enabled() and x.requires_grad)
        or tracing()
    ):
        return F.pad(x, (1, 1, 1, 1), mode="reflect")
    b, c, h, w = x.shape
    layout = (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        else torch.contiguous_format
    )
    out = torch.empty((b, c, h + 2, w + 2), dtype=x.dtype, device=x.device, memory_format=layout)
    out[:, :, 1:-1, 1:-1] = x
    out[:, :, 0, 1:-1] = x[:, :, 1]
    out[:, :, -1, 1:-1] = x[:, :, -2]
    out[:, :, :, 0] = out[:, :, :, 2]
    out[:, :, :, -1] = out[:, :, :, -3]
    return out


class ReflectionPad1(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d(1)`` computed with :func:`reflection_pad_1` (no parameters, so
    state-dict keys are unchanged)."""

    def __init__(self) -> None:
        super().__init__(1)

    def forward(self, x: Tensor) -> Tensor:
        return reflection_pad_1(x)


def _fusable(conv: nn.Conv2d, x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
        and not tracing()
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))``; on the CPU at inference one oneDNN call with the ReLU fused into the
    convolution (a separate ReLU is a full extra pass over the output, ~6 % of a bf16 frame).
    Same values: rounding to bf16 and ReLU commute."""
    if _fusable(conv, x):
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
            list(conv.dilation), conv.groups, "relu", [], "",
        )  # fmt: skip
    return torch.relu(conv(x))


class ConvStack(nn.Sequential):
    """``nn.Sequential`` (same indices, same state-dict keys) that runs each Conv2d followed by
    a ReLU as :func:`conv_relu`."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return run_layers(self, x)[0]


def run_layers(
    layers: nn.Sequential, x: Tensor, taps: Mapping[int, str] | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``layers`` in order with Conv2d + ReLU pairs fused (:func:`conv_relu`); return the
    output and the outputs of the modules in ``taps`` (module index -> name) by name."""
    taps = taps or {}
    out: dict[str, Tensor] = {}
    modules = list(layers)
    i = 0
    while i < len(modules):
        module = modules[i]
        if (
            isinstance(module, nn.Conv2d)
            and i + 1 < len(modules)
            and isinstance(modules[i + 1], nn.ReLU)
            and i not in taps
        ):
            x = conv_relu(module, x)
            i += 1  # the ReLU is done
        else:
            x = module(x)
        if i in taps:
            out[taps[i]] = x
        i += 1
    return x, out
