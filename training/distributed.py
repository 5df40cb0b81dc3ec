"""One training code path for one process, many GPUs and many nodes.

Launch with torchrun (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT):

    torchrun --nproc_per_node 4 --no-python stylestream train --config configs/train_video.yaml

Without those variables the run is a single process and nothing here touches
``torch.distributed``. NCCL is used when training on CUDA, gloo on CPU. Rank 0 alone logs,
writes TensorBoard, saves checkpoints and exports; every rank reads a checkpoint to resume
(so multi-node runs need ``output_dir`` on a shared file system).

:func:`launch_local` starts ``world_size`` CPU processes with ``torch.multiprocessing`` for tests
and benchmarks (gloo on loopback, a free port).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from adaattn_video import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run.

    Attributes:
        rank: global rank (0 .. world_size - 1); rank 0 logs and saves.
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        device: the torch device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """The device of this process: :func:`adaattn_video.settings.resolve_device` (``auto`` ->
    cuda, then mps, then cpu; a device this machine lacks is a one-line error), and plain
    ``cuda`` -> the local rank's GPU.

    ``cuda:N`` in a run of several processes is the FIRST GPU of the node's ranks: local rank r
    trains on ``cuda:(N + r)`` (every rank on cuda:N would share one GPU), or on ``cuda:0`` when
    each rank sees a single GPU (a launcher that sets CUDA_VISIBLE_DEVICES per rank). A single
    process keeps ``cuda:N`` as given."""
    kind, _, index = name.partition(":")
    if kind == "cuda" and index.isdigit() and world_size > 1 and torch.cuda.is_available():
        count = torch.cuda.device_count()
        gpu = 0 if count == 1 else int(index) + local_rank
        if gpu >= count:
            raise settings.StylizerSettingError(
                f"device {name!r}: local rank {local_rank} would train on cuda:{gpu}, but this "
                f"process sees {count} CUDA device(s); use cuda (rank r on cuda:r) or a "
                "lower first index"
            )
        name = f"cuda:{gpu}"
    name = settings.resolve_device(name)
    if name == "cuda":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun (or :func:`launch_local`) describes, if any.

    Reads RANK / WORLD_SIZE / LOCAL_RANK from the environment; a missing WORLD_SIZE or
    WORLD_SIZE=1 means a plain single-process run.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    torch_device = resolve_device(device, local_rank, world_size)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        log.debug("rank %d/%d joined the %s process group", rank, world_size, backend)
    return DistributedContext(rank, world_size, local_rank, torch_device)


def shutdown_distributed() -> None:
    """Leave the process group (no-op for single-process runs)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.barrier()


def wrap_model(module: nn.Module, ctx: DistributedContext) -> nn.Module:
    """DistributedDataParallel around ``module`` when there are several processes.

    Only parameters with ``requires_grad`` are synchronised (the frozen encoder is not). The
    only buffers are the encoder's constant ImageNet statistics (a few floats), so DDP's default
    buffer sync costs nothing worth a (deprecated) switch.
    """
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def unwrap_model(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def all_reduce_mean(tensor: Tensor, ctx: DistributedContext) -> Tensor:
    """The mean of ``tensor`` over all ranks (itself when single-process)."""
    if not ctx.distributed:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _local_worker(
    rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
        }
    )
    try:
        fn(rank, *args)
    finally:
        shutdown_distributed()


def launch_local(world_size: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` fresh processes on this machine.

    Each process gets the torchrun environment variables (gloo on a free loopback port), so
    ``fn`` calls :func:`init_distributed` like any torchrun worker. ``fn`` and ``args`` must be
    picklable (a module-level function). Raises if any process fails.
    """
    import torch.multiprocessing as mp

    mp.spawn(_local_worker, args=(world_size, free_port(), fn, args), nprocs=world_size, join=True)
