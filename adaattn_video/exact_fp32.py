"""IEEE float32 on CUDA, where PyTorch's "float32" convolutions are TF32 by default.

``torch.backends.cudnn.allow_tf32`` is True out of the box, so every float32 convolution on an
Ampere-or-newer GPU rounds its inputs to 10 mantissa bits; float32 matmuls follow
``torch.get_float32_matmul_precision()`` ("highest" = IEEE unless someone lowered it). Two places
need real float32:

* the image model's encoder and attention (:class:`~adaattn_video.model.ImageAdaAttN` with
  softmax attention): its unscaled softmax is nearly one-hot, so a rounding of the features
  changes which style position wins;
* every float32 reference a reduced precision is compared with (``bench fidelity``, the GPU
  tests against the CPU).

:func:`ieee_fp32` turns both TF32 switches off and restores them after. The switches are
process-wide: nested and concurrent uses (several threads stylizing) are counted, and the
settings are restored when the last one leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_depth = 0
_saved: tuple[bool, str] | None = None


@contextmanager
def ieee_fp32(device: torch.device | str | None = None) -> Iterator[None]:
    """Float32 convolutions and matmuls in IEEE precision (no TF32) inside the block.

    ``device``: nothing is changed unless it is a CUDA device (None: always; TF32 exists only on
    CUDA, so the switches are harmless elsewhere)."""
    if device is not None and torch.device(device).type != "cuda":
        yield
        return
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                torch.backends.cudnn.allow_tf32 = _saved[0]
                torch.set_float32_matmul_precision(_saved[1])
                _saved = None


def tf32_setting() -> str:
    """The float32 setting in force, for reports: e.g. ``"conv TF32, matmul IEEE"``."""
    conv = "TF32" if torch.backends.cudnn.allow_tf32 else "IEEE"
    matmul = "IEEE" if torch.get_float32_matmul_precision() == "highest" else "TF32"
    return f"fp32 conv {conv}, matmul {matmul}"
