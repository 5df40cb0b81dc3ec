"""What a training run shows: a summary before the first step, a progress bar with losses and
throughput, periodic log lines, TensorBoard scalars and sample grids. Rank 0 only; other ranks
get a :class:`RunLogger` with ``enabled=False`` that does nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def format_summary(items: Mapping[str, Any]) -> str:
    """Aligned ``key: value`` lines (the run summary logged before the first step)."""
    width = max(len(k) for k in items)
    return "\n".join(f"  {k.ljust(width)} : {v}" for k, v in items.items())


def sample_grid(rows: list[Tensor], max_samples: int = 4) -> Tensor:
    """A (3, H', W') image: one row per sample, one column per tensor in ``rows``.

    rows: tensors (B, 3, H, W) in [0, 1] of the same spatial size (e.g. content, second view,
    style, output, second output).
    """
    from torchvision.utils import make_grid

    count = min(max_samples, rows[0].shape[0])
    tiles = torch.stack([r[:count].detach().float().clamp(0, 1).cpu() for r in rows], dim=1)
    return make_grid(tiles.flatten(0, 1), nrow=len(rows), padding=2, pad_value=1.0)


class RunLogger:
    """Progress bar + log lines + TensorBoard for one run (does nothing when not enabled)."""

    def __init__(
        self,
        *,
        enabled: bool,
        total_steps: int,
        start_step: int,
        log_every: int,
        tensorboard_dir: Path | None,
        samples_per_step: int,
    ) -> None:
        self.enabled = enabled
        self.total_steps = total_steps
        self.log_every = log_every
        self.samples_per_step = samples_per_step
        self._bar = None
        self._writer = None
        self._window_start = time.perf_counter()
        self._window_steps = 0
        self.last_rate = 0.0
        if not enabled:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True
        )
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(tensorboard_dir))

    def summary(self, items: Mapping[str, Any]) -> None:
        if self.enabled:
            log.info("training run:\n%s", format_summary(items))

    def step(self, step: int, losses: Mapping[str, float] | None, lr: float, skipped: int) -> None:
        """Called after every step (``step`` = steps done); ``losses`` only on logging steps."""
        if not self.enabled:
            return
        self._window_steps += 1
        if self._bar is not None:
            self._bar.update(1)
        if losses is None:
            return
        now = time.perf_counter()
        self.last_rate = (
            self._window_steps * self.samples_per_step / max(now - self._window_start, 1e-9)
        )
        self._window_start, self._window_steps = now, 0
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{losses['total']:.4g}", sim=f"{losses['similarity']:.3g}",
                samples_s=f"{self.last_rate:.2f}",
            )  # fmt: skip
        log.info(
            "step %d/%d loss %.5g (style %.4g local %.4g content %.4g similarity %.4g) "
            "lr %.3g %.2f samples/s skipped files %d",
            step, self.total_steps, losses["total"], losses["style"], losses["local"],
            losses["content"], losses["similarity"], lr, self.last_rate, skipped,
        )  # fmt: skip
        if self._writer is not None:
            for name, value in losses.items():
                self._writer.add_scalar(f"loss/{name}", value, step)
            self._writer.add_scalar("lr", lr, step)
            self._writer.add_scalar("samples_per_s", self.last_rate, step)
            self._writer.add_scalar("skipped_files", skipped, step)

    def images(self, step: int, grid: Tensor) -> None:
        if self.enabled and self._writer is not None:
            self._writer.add_image("samples", grid, step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
