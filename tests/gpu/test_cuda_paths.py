"""The CUDA paths end to end (marker ``gpu``; skipped without CUDA): an fp16 autocast +
GradScaler training step, the image model on CUDA against the CPU (IEEE float32 both), a
regions frame, a serve round of two streams, and the memory estimate against the allocator.

Imports only torch, numpy, PIL and the project's model/serve modules, so ``pytest -m gpu
tests/gpu`` runs on a GPU machine that has the core dependencies alone."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaattn_video.config import IMAGE_MODEL, ModelConfig
from adaattn_video.exact_fp32 import ieee_fp32
from adaattn_video.model import build_model, init_untrained_

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _images(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _model(config: ModelConfig):
    return init_untrained_(build_model(config)).eval()


def test_fp16_autocast_gradscaler_training_step() -> None:
    """fp16 autocast + GradScaler as training uses them. The scaler starts at 2**16 and skips
    the steps whose scaled gradients overflow (halving its scale each time), so the first steps
    may be skipped by design: within a few steps one must be applied, with finite losses."""
    model = _model(ModelConfig()).cuda().train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.Adam(trainable, lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    content, style = _images((2, 3, 64, 64), 1).cuda(), _images((1, 3, 64, 64), 2).cuda()
    changed = 0
    for _ in range(10):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            out = model(content, style)
            loss = F.mse_loss(out.float(), content)
        assert torch.isfinite(loss)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        changed = sum(
            not torch.equal(a, p.detach()) for a, p in zip(before, trainable, strict=True)
        )
        if changed:
            break
    assert 0 < scaler.get_scale() <= 2.0**16
    assert changed > len(trainable) // 2, f"only {changed} of {len(trainable)} tensors moved"


def test_image_model_on_cuda_matches_the_cpu() -> None:
    """The softmax image model in float32 on CUDA: in IEEE float32 it stays at float32
    rounding of the CPU; with the defaults (TF32 convolutions in the decoder) its encoder and
    projections still run IEEE, so no style position flips and the output stays within TF32's
    rounding (a flip moves whole regions by far more)."""
    model = _model(IMAGE_MODEL)
    content, style = _images((1, 3, 64, 96), 3), _images((1, 3, 64, 64), 4)
    reference = model.stylize(content, [model.encode_style(style)])
    span = float(reference.max() - reference.min())
    model.cuda()
    with ieee_fp32("cuda"):
        exact = model.stylize(content.cuda(), [model.encode_style(style.cuda())]).cpu()
    assert float((exact - reference).abs().max()) / span < 1e-3
    default = model.stylize(content.cuda(), [model.encode_style(style.cuda())]).cpu()
    assert float((default - reference).abs().max()) / span < 2e-2


def test_a_regions_frame_on_cuda_matches_the_cpu() -> None:
    from adaattn_video.masked_attention import stylize_regions

    model = _model(ModelConfig())
    content = _images((1, 3, 64, 96), 5)
    styles_cpu = [model.encode_style(_images((1, 3, 48, 48), 6 + i)) for i in range(2)]
    masks = torch.zeros(1, 2, 64, 96)
    masks[:, 0, :, :40] = 1.0
    masks[:, 1, :, 56:] = 1.0
    reference = stylize_regions(model, content, [styles_cpu[0]], [1.0], styles_cpu, masks)
    model.cuda()
    with ieee_fp32("cuda"):  # the defaults run the convolutions in TF32 (about 1e-3 relative)
        styles = [model.encode_style(_images((1, 3, 48, 48), 6 + i).cuda()) for i in range(2)]
        out = stylize_regions(model, content.cuda(), [styles[0]], [1.0], styles, masks.cuda())
    span = float(reference.max() - reference.min())
    assert float((out.cpu() - reference).abs().max()) / span < 1e-3


def test_a_serve_round_of_two_streams_on_cuda(tmp_path) -> None:
    from PIL import Image

    from adaattn_video.settings import StylizerSpec
    from adaattn_video.stylizer import open_stylizer
    from streamer.frames import Frame
    from streamer.regions.switch import RegionSwitch
    from streamer.serve.config import StreamSpec
    from streamer.serve.scheduler import Scheduler
    from streamer.serve.stream import StreamRuntime

    model = _model(ModelConfig()).cuda()
    streams = []
    for name, color in (("a", (220, 30, 30)), ("b", (30, 30, 220))):
        path = tmp_path / f"{name}.png"
        Image.fromarray(np.full((64, 64, 3), color, np.uint8)).save(path)
        spec = StylizerSpec(styles=(str(path),), style_size=64, device="cuda", precision="fp16")
        stream_spec = StreamSpec(name=name, source="lavfi:testsrc2", styles=(str(path),))
        streams.append(
            StreamRuntime(stream_spec, RegionSwitch(open_stylizer(spec, model=model)), None)
        )
    scheduler = Scheduler(model, torch.device("cuda"), lambda: streams, max_batch=8)
    for stream in streams:
        image = np.random.default_rng(0).integers(0, 256, (72, 128, 3), dtype=np.uint8)
        stream.inbox.put(Frame(index=0, image=image, capture_time_s=time.time()))
    assert scheduler.run_round() == 2
    assert scheduler.stats.batches == 1 and scheduler.stats.failed_batches == 0
    outs = [stream.outbox.get_nowait() for stream in streams]
    assert [o.image.shape for o in outs] == [(72, 128, 3)] * 2
    assert all(o.style_id for o in outs)
    assert not np.array_equal(outs[0].image, outs[1].image)  # each with its own style


@pytest.mark.parametrize(("size", "batch"), [((720, 1280), 1), ((360, 640), 4)])
def test_memory_estimate_against_the_cuda_allocator(size, batch) -> None:
    from adaattn_video.resources import estimate_stylize_memory
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    model = _model(ModelConfig())
    stylizer = FrameStylizer(model, StylizerConfig(device="cuda", precision="fp16"))
    stylizer.set_style(np.random.default_rng(1).integers(0, 256, (256, 256, 3), np.uint8))
    frames = torch.from_numpy(
        np.random.default_rng(2).integers(0, 256, (batch, *size, 3), np.uint8)
    )
    stylizer.stylize_uint8(frames.cuda())  # warm-up: cuDNN picks its kernels
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    torch.cuda.reset_peak_memory_stats()
    stylizer.stylize_uint8(frames.cuda())
    torch.cuda.synchronize()
    peak_allocated = torch.cuda.max_memory_allocated() - allocated
    peak_reserved = torch.cuda.max_memory_reserved() - reserved
    estimate = estimate_stylize_memory(
        model.config, size, batch=batch, precision="fp16", device="cuda"
    ).frames
    numbers = f"estimate {estimate / 2**20:.0f} MiB, allocated {peak_allocated / 2**20:.0f} MiB, reserved {peak_reserved / 2**20:.0f} MiB"
    assert estimate >= 0.85 * peak_allocated, numbers  # the check must not let an OOM through
    assert estimate <= 2.0 * max(peak_reserved, peak_allocated), numbers  # nor refuse too much
