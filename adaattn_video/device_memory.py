"""Running out of accelerator memory, the same way on CUDA and MPS.

CUDA raises :class:`torch.OutOfMemoryError` (``torch.cuda.OutOfMemoryError`` is the same
class); MPS raises it in recent PyTorch releases but a plain ``RuntimeError("MPS backend out of
memory ...")`` in others. After either, the caching allocator still holds the blocks of the
failed call: :func:`free_cached_memory` hands them back, or every later call fails too.
"""

from __future__ import annotations

import gc

import torch


def is_out_of_memory(err: BaseException) -> bool:
    """True for an accelerator's out-of-memory error (CUDA or MPS)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_cached_memory(device: torch.device | str) -> None:
    """Return the caching allocator's unused blocks on ``device`` (after an out-of-memory
    error); nothing to do on the CPU."""
    kind = torch.device(device).type
    if kind == "cpu":
        return
    gc.collect()  # tensors of the failed call that only a reference cycle still holds
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()
