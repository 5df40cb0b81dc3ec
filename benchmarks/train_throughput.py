"""Training throughput: samples/s of the real training step, and how it scales with processes.

Each configuration runs in fresh worker processes started like torchrun's (one process = the
same code path without a process group), on the bundled images with a random loss encoder, so
it needs no data and no weights. Batches are loaded before timing: the number is the step's
compute (forward, losses, backward, DDP all-reduce, optimizer), not JPEG decoding, which the
DataLoader's workers overlap in a real run.

A sample is one (content, style) example; with the image-similarity loss on, every sample is
stylised twice (its two views), so images/s = 2 x samples/s.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.timing import Stopwatch, synchronize
from training.config import TrainConfig
from training.distributed import barrier, init_distributed, launch_local


@dataclass(frozen=True)
class TrainBenchConfig:
    """What to measure.

    Attributes:
        size: crop side in pixels (256 = the reference run).
        batch_size: samples per process and step.
        steps / warmup_steps: timed steps, and untimed ones before them.
        processes: process counts to compare (each a DDP run; 1 = no process group).
        threads: CPU threads in total, divided evenly between the processes (None = all cores).
        device: "cpu" or "cuda" (then one GPU per process).
        precision: "fp32", "bf16" or "fp16" (fp16 on CUDA only).
    """

    size: int = 256
    batch_size: int = 2
    steps: int = 3
    warmup_steps: int = 1
    processes: tuple[int, ...] = (1, 2)
    threads: int | None = None
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.size % 16 or self.size < 32:
            raise ValueError(f"size must be a multiple of 16 and >= 32, got {self.size}")
        if self.batch_size < 1 or self.steps < 1 or self.warmup_steps < 0:
            raise ValueError(
                f"expected batch_size >= 1, steps >= 1, warmup_steps >= 0, got "
                f"{self.batch_size}, {self.steps}, {self.warmup_steps}"
            )
        if not self.processes or min(self.processes) < 1:
            raise ValueError(f"processes must be >= 1 each, got {self.processes}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and max(self.processes) > max(1, torch.cuda.device_count()):
            raise ValueError(
                f"{max(self.processes)} processes need as many GPUs, found {torch.cuda.device_count()}"
            )

    @property
    def total_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


@dataclass
class TrainBenchResult:
    processes: int
    threads_per_process: int
    step_s: float
    samples_per_s: float
    images_per_s: float


def _train_config(config: TrainBenchConfig, output_dir: str) -> TrainConfig:
    return TrainConfig(
        content_dir="bundled",
        style_dir="bundled",
        allow_random_encoder=True,
        load_size=config.size,
        crop_size=config.size,
        batch_size=config.batch_size,
        num_workers=0,
        max_steps=config.warmup_steps + config.steps,
        checkpoint_every=10**9,
        log_every=10**9,
        sample_every=0,
        tensorboard=False,
        output_dir=output_dir,
        device=config.device,
        precision=config.precision,
    )


def _worker(
    rank: int, config: TrainBenchConfig, threads: int, output_dir: str, result_file: str
) -> None:
    from training.trainer import Trainer

    torch.set_num_threads(threads)
    train_config = _train_config(config, output_dir)
    ctx = init_distributed(train_config.device)
    trainer = Trainer(train_config, ctx)
    batches = list(trainer.data_loader())
    for batch in batches[: config.warmup_steps]:
        trainer.train_step(batch)

    # Every process starts and ends the timed steps together (its device synced by the
    # stopwatch, then a barrier): the slowest process sets the pace, as in a real run.
    synchronize(ctx.device)
    barrier(ctx)
    with Stopwatch(ctx.device) as watch:
        for batch in batches[config.warmup_steps :]:
            trainer.train_step(batch)
        synchronize(ctx.device)
        barrier(ctx)
    if ctx.is_main:
        Path(result_file).write_text(json.dumps({"elapsed_s": watch.seconds}))


def run_train_benchmark(config: TrainBenchConfig) -> list[TrainBenchResult]:
    """Measure every process count of ``config``; returns one result per count."""
    results = []
    pairs = _train_config(config, "unused").similarity_weight > 0
    with tempfile.TemporaryDirectory(prefix="stylestream-bench-train-") as tmp:
        for count in config.processes:
            threads = max(1, config.total_threads // count)
            result_file = str(Path(tmp) / f"result_{count}.json")
            launch_local(
                count, _worker, config, threads, str(Path(tmp) / f"run_{count}"), result_file
            )
            elapsed = json.loads(Path(result_file).read_text())["elapsed_s"]
            samples = count * config.batch_size * config.steps / elapsed
            results.append(
                TrainBenchResult(
                    processes=count,
                    threads_per_process=threads,
                    step_s=elapsed / config.steps,
                    samples_per_s=samples,
                    images_per_s=samples * (2 if pairs else 1),
                )
            )
    return results


def format_results(config: TrainBenchConfig, results: list[TrainBenchResult]) -> str:
    """A table with each count's speed-up over the first (usually 1 process)."""
    threads = config.total_threads
    device = (
        "GPU"
        if config.device == "cuda"
        else f"CPU, {threads} thread{'s' * (threads != 1)} in total"
    )
    lines = [
        f"training throughput at {config.size}x{config.size}, batch {config.batch_size} per "
        f"process, {config.precision}, {device} ({config.steps} timed steps)",
        f"{'processes':>9}  {'threads/proc':>12}  {'step s':>8}  {'samples/s':>9}  "
        f"{'images/s':>8}  {'speed-up':>8}",
    ]
    base = results[0].samples_per_s if results else 1.0
    for r in results:
        lines.append(
            f"{r.processes:>9}  {r.threads_per_process:>12}  {r.step_s:>8.3f}  "
            f"{r.samples_per_s:>9.3f}  {r.images_per_s:>8.3f}  {r.samples_per_s / base:>7.2f}x"
        )
    return "\n".join(lines)


__all__ = ["TrainBenchConfig", "TrainBenchResult", "format_results", "run_train_benchmark"]
