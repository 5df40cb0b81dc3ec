"""How close is close enough: one measure and the tolerances the model tests share."""

from __future__ import annotations

import torch

# fp32 on both sides, only the order of float additions differs (batched convolutions and
# matmuls, another engine's kernels, linear vs quadratic attention sums): ~1e-6 of the output's
# range. 1e-4 leaves room and still fails on any real mix-up (another style or frame moves
# outputs by ~1e-1 of the range).
FP32_REORDER_TOLERANCE = 1e-4
# torch.testing.assert_close arguments for the same case where an elementwise check reads better.
FP32_REORDER_CLOSE = {"atol": 2e-5, "rtol": 1e-4}


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """max |actual - reference| over the reference's range (max - min): outputs vary widely in
    scale (features, statistics, pictures), so an absolute bound would mean different things."""
    span = (reference.max() - reference.min()).detach().clamp_min(1e-12)
    return float((actual - reference).detach().abs().max() / span)
