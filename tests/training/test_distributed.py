"""Multi-process training on CPU (gloo on loopback), launched the way users launch it.

* torchrun starts two ranks of a small script that trains with the library's own code path; each
  rank writes its parameters, and both must be identical after a few steps (DDP all-reduces the
  gradients) and different from the start (training happened).
* ``torchrun --no-python stylestream train`` runs the command line itself: rank 0 alone writes
  checkpoints and the export.
* The throughput benchmark spawns its ranks with torch.multiprocessing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.distributed import free_port

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    from safetensors.torch import save_file
    from training.config import TrainConfig
    from training.distributed import init_distributed, shutdown_distributed
    from training.trainer import Trainer

    torch.set_num_threads(1)
    out = sys.argv[1]
    config = TrainConfig(
        content_dir="bundled", style_dir="bundled", allow_random_encoder=True, load_size=40,
        crop_size=32, batch_size=2, num_workers=0, max_steps=3, checkpoint_every=3,
        log_every=1, sample_every=0, tensorboard=False, device="cpu", output_dir=out + "/run",
        lr=1e-3,
    )
    ctx = init_distributed("cpu")
    trainer = Trainer(config, ctx)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.train()
    final = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(final, f"{out}/rank{ctx.rank}.safetensors")
    save_file(initial, f"{out}/initial{ctx.rank}.safetensors")
    with open(f"{out}/losses{ctx.rank}.txt", "w") as handle:
        handle.write(repr(sorted(result.losses.items())))
    shutdown_distributed()
    """
)


def torchrun(*args: str, cwd: Path, timeout_s: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args,
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def test_two_ranks_end_with_identical_parameters(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    done = torchrun(str(script), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (
        load_file(tmp_path / "rank0.safetensors"),
        load_file(tmp_path / "rank1.safetensors"),
    )
    initial = load_file(tmp_path / "initial0.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between ranks"
    trained = [k for k in rank0 if k.startswith(("transformer.", "decoder."))]
    assert any(not torch.equal(rank0[k], initial[k]) for k in trained), "nothing was trained"
    assert all(torch.equal(rank0[k], initial[k]) for k in rank0 if k.startswith("encoder."))
    # Each rank saw its own half of the data: their local losses differ.
    assert (tmp_path / "losses0.txt").read_text() != (tmp_path / "losses1.txt").read_text()
    # Only rank 0 writes checkpoints and the export, once.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step_00000003.safetensors"
    ]
    assert (tmp_path / "run" / "video.safetensors").is_file()


def test_torchrun_runs_the_train_command(tmp_path: Path) -> None:
    stylestream = Path(sys.executable).with_name("stylestream")
    if not stylestream.is_file():
        pytest.fail(f"the console script {stylestream} is missing: pip install -e .")
    overrides = [
        "max_steps=2", "checkpoint_every=2", "crop_size=32", "load_size=40", "tensorboard=false",
        f"output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    done = torchrun(
        "--no-python", str(stylestream), "train", "--config", str(CONFIGS / "train_smoke.yaml"),
        *overrides, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained to step 2") == 1, "only rank 0 reports"
    assert "2 per process, 4 global" in done.stderr
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [
        "step_00000002.safetensors"
    ]


def test_training_benchmark_spawns_two_ranks(tmp_path: Path) -> None:
    from benchmarks.train_throughput import TrainBenchConfig, format_results, run_train_benchmark

    config = TrainBenchConfig(
        size=32, batch_size=1, steps=1, warmup_steps=0, processes=(2,), threads=2
    )
    (result,) = run_train_benchmark(config)
    assert result.processes == 2 and result.threads_per_process == 1
    assert result.samples_per_s > 0 and result.images_per_s == 2 * result.samples_per_s
    table = format_results(config, [result])
    assert "samples/s" in table and "1.00x" in table
    json.dumps(result.__dict__)
