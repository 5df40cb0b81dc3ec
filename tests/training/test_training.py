"""Training end to end on the bundled images at 32-64 px: config, data, sampler, schedule,
checkpoints at the configured steps, bitwise-exact resume, export that ``stylestream image``
renders, fine-tuning, video-frame pairs and the command line.

The loss encoder is random (``allow_random_encoder``): no VGG weights exist offline. That is
enough to check that the optimisation runs, is reproducible and lowers its objective; it says
nothing about stylization quality.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest
import torch
from helpers.cli import main_error

from adaattn_video.assets import DEFAULT_CONTENT, DEFAULT_STYLE, content_images, style_images
from adaattn_video.checkpoint import load_checkpoint, read_checkpoint
from adaattn_video.config import ModelConfig
from adaattn_video.encoder import VGGEncoder
from adaattn_video.errors import StylestreamError
from adaattn_video.image_io import read_image, write_image
from training.config import TrainConfig, TrainConfigError, load_train_config
from training.data import DataFolderError, ImageFolder, StepSampler, VideoFramePairs, find_images
from training.trainer import (
    Trainer,
    TrainingStateError,
    list_checkpoints,
    load_training_state,
    lr_factor,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Bundled photos and paintings copied into nested folders, plus one corrupt JPEG and a
    file that is not an image."""
    root = tmp_path_factory.mktemp("data")
    contents, styles = root / "contents", root / "styles"
    for i, path in enumerate(content_images()):
        target = contents / ("a" if i % 2 else "b/c") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (contents / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (contents / "a" / "notes.txt").write_text("not an image")
    styles.mkdir()
    for path in style_images():
        shutil.copy(path, styles / path.name)
    return {"contents": contents, "styles": styles, "root": root}


def small_config(data: dict[str, Path], output: Path, **changes) -> TrainConfig:
    values = {
        "content_dir": str(data["contents"]),
        "style_dir": str(data["styles"]),
        "allow_random_encoder": True,
        "load_size": 40,
        "crop_size": 32,
        "batch_size": 2,
        "num_workers": 0,
        "lr": 1e-3,
        "max_steps": 4,
        "checkpoint_every": 2,
        "keep_checkpoints": 0,
        "log_every": 2,
        "sample_every": 0,
        "tensorboard": False,
        "device": "cpu",
        "output_dir": str(output),
    }
    values.update(changes)
    return TrainConfig.from_mapping(values)


# -- config -----------------------------------------------------------------------------------------
def test_reference_and_smoke_configs() -> None:
    reference = load_train_config(CONFIGS / "train_video.yaml")
    assert (reference.load_size, reference.crop_size, reference.batch_size) == (512, 256, 8)
    assert reference.lr == 1e-4 and reference.optimizer == "adam"
    weights = (reference.style_weight, reference.local_weight, reference.content_weight)
    assert (*weights, reference.similarity_weight) == (10.0, 3.0, 0.0, 100.0)
    assert reference.attention == "cosine" and not reference.allow_random_encoder
    smoke = load_train_config(CONFIGS / "train_smoke.yaml", ["max_steps=3"])
    assert smoke.max_steps == 3 and smoke.allow_random_encoder
    assert smoke.resolved_dir("content_dir") == DEFAULT_CONTENT.parent


def test_config_conversions_and_round_trip() -> None:
    config = load_train_config(
        None,
        ["content_dir=c", "style_dir=s", "lr=2e-4", "similarity_taps=[relu3_1, relu4_1]",
         "grad_clip_norm=null", "tensorboard=false", "betas=0.5,0.99"],
    )  # fmt: skip
    assert config.lr == 2e-4 and config.similarity_taps == ("relu3_1", "relu4_1")
    assert config.grad_clip_norm is None and config.tensorboard is False
    assert config.betas == (0.5, 0.99)
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lrr=1"], "unknown key"),
        (["lr=fast"], "lr: expected a number, got 'fast'"),
        (["crop_size=100"], "multiple of 16"),
        (["crop_size=512", "load_size=256"], "crop_size must be <= load_size"),
        (["style_weight=-1"], "style_weight must be >= 0"),
        (["style_weight=0", "local_weight=0", "similarity_weight=0"], "at least one loss weight"),
        (["precision=fp64"], "precision: expected one of"),
        (["similarity_taps=[relu1_1]"], "similarity_taps"),
        (["batch_size=2.5"], "batch_size: expected an integer"),
        (["device=tpu"], "device must be"),
        (["lr"], "key=value"),
    ],
)
def test_config_errors_say_what_was_expected(overrides: list[str], message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        load_train_config(None, ["content_dir=c", "style_dir=s", *overrides])


def test_config_file_errors(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text("content_dir: c\nstyle_dir: s\nbatch_szie: 4\n")
    with pytest.raises(TrainConfigError, match=r"unknown key\(s\) \['batch_szie'\]"):
        load_train_config(tmp_path / "typo.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(TrainConfigError, match="expected a mapping"):
        load_train_config(tmp_path / "list.yaml")
    with pytest.raises(TrainConfigError, match="does not exist"):
        load_train_config(tmp_path / "missing.yaml")
    with pytest.raises(TrainConfigError, match="content_dir is required"):
        load_train_config(None, ["style_dir=s"])


def test_lr_schedule() -> None:
    base = {"content_dir": "c", "style_dir": "s", "max_steps": 110, "warmup_steps": 10}
    cosine = TrainConfig.from_mapping({**base, "lr_schedule": "cosine", "min_lr_ratio": 0.1})
    assert lr_factor(cosine, 0) == pytest.approx(0.1) and lr_factor(cosine, 9) == 1.0
    assert lr_factor(cosine, 10) == 1.0
    assert lr_factor(cosine, 60) == pytest.approx(0.55)
    assert lr_factor(cosine, 110) == pytest.approx(0.1)
    linear = TrainConfig.from_mapping({**base, "lr_schedule": "linear"})
    assert lr_factor(linear, 60) == pytest.approx(0.5)
    constant = TrainConfig.from_mapping({**base, "warmup_steps": 0})
    assert {lr_factor(constant, s) for s in (0, 50, 109)} == {1.0}


# -- data ---------------------------------------------------------------------------------------------
def test_find_images_any_depth_and_folder_errors(data: dict[str, Path], tmp_path: Path) -> None:
    found = find_images(data["contents"])
    assert len(found) == len(content_images()) + 1  # the corrupt JPEG is found; decoding skips it
    assert {p.parent.name for p in found} == {"a", "c"}
    with pytest.raises(DataFolderError, match="does not exist"):
        find_images(tmp_path / "missing", "content")
    (tmp_path / "empty" / "deep").mkdir(parents=True)
    (tmp_path / "empty" / "deep" / "readme.txt").write_text("x")
    with pytest.raises(DataFolderError, match="holds no images"):
        find_images(tmp_path / "empty", "style")
    with pytest.raises(DataFolderError, match="is not a folder"):
        find_images(DEFAULT_CONTENT)


def test_unreadable_files_are_skipped_and_counted(data: dict[str, Path]) -> None:
    folder = ImageFolder(data["contents"], 40, 32, "content")
    broken = next(i for i, p in enumerate(folder.paths) if p.name == "broken.jpg")
    image, skipped = folder.load(broken, torch.Generator().manual_seed(0))
    assert skipped == 1 and image.shape == (3, 32, 32)
    image, skipped = folder.load((broken + 1) % len(folder), torch.Generator().manual_seed(0))
    assert skipped == 0


def test_crops_are_seeded(data: dict[str, Path]) -> None:
    folder = ImageFolder(data["styles"], 64, 32, "style")
    first = folder.load(0, torch.Generator().manual_seed(1))[0]
    assert torch.equal(first, folder.load(0, torch.Generator().manual_seed(1))[0])
    assert not torch.equal(first, folder.load(0, torch.Generator().manual_seed(2))[0])


def test_step_sampler_is_a_function_of_the_step() -> None:
    def keys(start: int, rank: int = 0, world: int = 1) -> list[tuple[int, int, int]]:
        return list(
            StepSampler(
                7, 3, 2, seed=5, start_step=start, max_steps=10, rank=rank, world_size=world
            )
        )

    full = keys(0)
    assert len(full) == 20 and keys(0) == full
    assert keys(4) == full[8:], "resuming at step 4 must see the uninterrupted run's samples"
    assert len({k[2] for k in full}) == 20, "every sample has its own seed"
    # Two ranks split each epoch of the 7 contents (padded to 8) between them.
    rank0 = [k[0] for k in keys(0, 0, 2)][:4]
    rank1 = [k[0] for k in keys(0, 1, 2)][:4]
    assert set(rank0) | set(rank1) == set(range(7))
    assert keys(0, 0, 2) != keys(0, 1, 2)


def test_video_frame_pairs_share_their_crop(tmp_path: Path) -> None:
    from training.evaluate import synthetic_clip

    photo = read_image(DEFAULT_CONTENT).permute(1, 2, 0).numpy()
    frames, _ = synthetic_clip(photo, frames=4, size=(48, 48), motion="pan", speed=2.0)
    clip = tmp_path / "videos" / "clip1"
    clip.mkdir(parents=True)
    for i, frame in enumerate(frames):
        write_image(clip / f"{i:03d}.png", torch.from_numpy(frame).permute(2, 0, 1).contiguous())
    pairs = VideoFramePairs(tmp_path / "videos", load_size=48, crop_size=32, gap=1)
    assert len(pairs) == 3 and pairs.clip_count == 1
    for seed in range(4):  # some seeds flip, some do not: the pair must move together
        first, second, skipped = pairs.load(0, torch.Generator().manual_seed(seed))
        assert skipped == 0
        # The camera pans 2 px per frame: the second crop is the first shifted by 2 px (left
        # in the image, or right when the pair was flipped).
        assert torch.equal(second[..., :-2], first[..., 2:]) or torch.equal(
            second[..., 2:], first[..., :-2]
        )
    with pytest.raises(DataFolderError, match="5 or more frames"):
        VideoFramePairs(tmp_path / "videos", load_size=48, crop_size=32, gap=4)


# -- trainer construction ---------------------------------------------------------------------------
def test_encoder_weights_are_required(data: dict[str, Path], tmp_path: Path) -> None:
    config = small_config(data, tmp_path, allow_random_encoder=False)
    with pytest.raises(TrainConfigError, match="encoder_weights is required"):
        Trainer(config)


def test_encoder_weights_from_a_vgg_normalised_file(data: dict[str, Path], tmp_path: Path) -> None:
    # A stand-in for the published vgg_normalised.pth: same keys and shapes, random values.
    vgg = VGGEncoder("vgg_normalised", deepest="relu5_1")
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    config = small_config(
        data, tmp_path / "run", allow_random_encoder=False,
        encoder_weights=str(tmp_path / "vgg_normalised.pth"),
    )  # fmt: skip
    trainer = Trainer(config)
    assert torch.equal(
        trainer.criterion.encoder.state_dict()["42.weight"], vgg.state_dict()["42.weight"]
    )
    # The model's own encoder (to relu3_1) is the loss encoder's first layers.
    assert torch.equal(
        trainer.model.encoder.state_dict()["16.weight"], vgg.state_dict()["16.weight"]
    )
    assert trainer.encoder_source == str(tmp_path / "vgg_normalised.pth")


def test_fp16_needs_cuda(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(StylestreamError, match="needs a CUDA device"):
        Trainer(small_config(data, tmp_path, precision="fp16"))


@pytest.mark.parametrize("changes", [{"precision": "bf16"}, {"attention": "softmax"}])
def test_one_step_variants(data: dict[str, Path], tmp_path: Path, changes: dict) -> None:
    trainer = Trainer(small_config(data, tmp_path, **changes))
    before = [p.detach().clone() for p in trainer.params]
    terms = trainer.train_step(next(iter(trainer.data_loader())))
    assert torch.isfinite(terms.total) and terms.total > 0
    assert trainer.step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params, strict=True))
    assert trainer.model.config.attention == changes.get("attention", "cosine")


def test_video_dir_pairs_are_consecutive_frames(tmp_path: Path, data: dict[str, Path]) -> None:
    from training.evaluate import synthetic_clip

    photo = read_image(DEFAULT_CONTENT).permute(1, 2, 0).numpy()
    frames, _ = synthetic_clip(photo, frames=5, size=(40, 40), motion="pan", speed=1.0)
    for i, frame in enumerate(frames):
        path = tmp_path / "videos" / "walk" / f"f{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, torch.from_numpy(frame).permute(2, 0, 1).contiguous())
    config = small_config(
        data, tmp_path / "run", content_dir="", video_dir=str(tmp_path / "videos")
    )
    trainer = Trainer(config)
    assert "frame pairs from 1 clips" in trainer.summary()["contents"]
    batch = next(iter(trainer.data_loader()))
    trainer.train_step(batch)
    assert torch.equal(trainer._last_images[1], batch["content_next"])


# -- a whole run ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(data: dict[str, Path], tmp_path_factory):
    """50 steps at 32 px, checkpoints every 20 steps (and at the end), TensorBoard on."""
    output = tmp_path_factory.mktemp("run")
    config = small_config(
        data, output, max_steps=50, checkpoint_every=20, log_every=10, sample_every=25,
        tensorboard=True,
    )  # fmt: skip
    return config, Trainer(config).train()


@pytest.mark.slow
def test_loss_decreases(trained_run) -> None:
    _, result = trained_run
    losses = [result.losses[s] for s in range(1, 51)]
    early, late = statistics.mean(losses[:10]), statistics.mean(losses[-10:])
    assert late < 0.9 * early, f"smoothed loss {early:.3f} -> {late:.3f}"


@pytest.mark.slow
def test_checkpoints_tensorboard_and_skipped_files(trained_run) -> None:
    config, result = trained_run
    output = Path(config.output_dir)
    assert [step for step, _ in list_checkpoints(output)] == [20, 40, 50]
    assert result.checkpoints == [p for _, p in list_checkpoints(output)]
    state = load_training_state(result.checkpoints[-1])
    assert state.step == 50 and state.config == config and state.world_size == 1
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))
    assert result.skipped_files >= 1, "the corrupt JPEG was sampled and must be counted"
    assert result.export_path == output / "video.safetensors"


@pytest.mark.slow
def test_exported_checkpoint_renders_through_stylestream_image(trained_run, tmp_path: Path) -> None:
    from streamer.cli import main

    _, result = trained_run
    model = load_checkpoint(result.export_path)
    assert model.config == ModelConfig(
        variant="video", encoder_family="vgg_normalised", attention="cosine"
    )
    _, metadata = read_checkpoint(result.export_path)
    assert metadata["trained_steps"] == "50" and metadata["source"] == "stylestream train"
    out = tmp_path / "frame.png"
    code = main(
        ["image", str(DEFAULT_CONTENT), "--style", str(DEFAULT_STYLE), "--weights",
         str(result.export_path), "--size", "64", "--style-size", "64", "--device", "cpu",
         "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    image = read_image(out)
    assert image.shape == (3, 64, 64) and image.float().std() > 0


# -- resume and fine-tuning -------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_continues_with_identical_losses(data: dict[str, Path], tmp_path: Path) -> None:
    changes = {
        "optimizer": "adamw", "weight_decay": 0.01, "lr_schedule": "cosine", "warmup_steps": 1,
        "grad_clip_norm": 1.0,
    }  # fmt: skip
    config = small_config(data, tmp_path / "run", **changes)
    full = Trainer(config).train()
    assert sorted(full.losses) == [1, 2, 3, 4]
    step2 = list_checkpoints(config.output_dir)[0][1]
    # A fresh process state: other global RNG draws in between must not matter.
    torch.rand(100)
    resumed_config = config.replace(resume=str(step2), num_workers=1)
    resumed = Trainer(resumed_config)
    assert resumed.step == 2
    result = resumed.train()
    assert result.losses == {3: full.losses[3], 4: full.losses[4]}
    # resume=auto takes the latest checkpoint; at max_steps there is nothing left to do.
    with pytest.raises(TrainingStateError, match="nothing left to train"):
        Trainer(config.replace(resume="auto"))
    assert Trainer(config.replace(resume="auto", max_steps=6)).step == 4


def test_resume_errors(data: dict[str, Path], tmp_path: Path) -> None:
    config = small_config(data, tmp_path / "run")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(TrainingStateError, match="not a readable training checkpoint"):
        Trainer(config.replace(resume=str(tmp_path / "junk.safetensors")))
    with pytest.raises(TrainingStateError, match="does not exist"):
        Trainer(config.replace(resume=str(tmp_path / "missing.safetensors")))
    trainer = Trainer(config)
    exported = trainer.export(tmp_path / "model.safetensors")
    with pytest.raises(TrainingStateError, match="init_from"):
        Trainer(config.replace(resume=str(exported)))
    # resume=auto with no checkpoint starts fresh
    assert Trainer(config.replace(resume="auto")).step == 0


def test_fine_tune_from_an_exported_model(data: dict[str, Path], tmp_path: Path) -> None:
    source = Trainer(small_config(data, tmp_path / "a", seed=7))
    source.train_step(next(iter(source.data_loader())))
    exported = source.export(tmp_path / "start.safetensors")
    tuned = Trainer(small_config(data, tmp_path / "b", init_from=str(exported)))
    for key, tensor in load_checkpoint(exported).state_dict().items():
        assert torch.equal(tuned.model.state_dict()[key], tensor), key
    assert torch.isfinite(tuned.train_step(next(iter(tuned.data_loader()))).total)
    with pytest.raises(TrainConfigError, match="torchvision_vgg19"):
        Trainer(
            small_config(
                data, tmp_path / "c", init_from=str(exported), encoder_family="torchvision_vgg19"
            )
        )


# -- command line -----------------------------------------------------------------------------------
def test_train_command_config_and_errors(capsys) -> None:
    from streamer.cli import main

    smoke = str(CONFIGS / "train_smoke.yaml")
    assert main(["train", "--config", smoke, "--print-config", "max_steps=3", "lr=5e-4"]) == 0
    printed = capsys.readouterr().out
    assert "max_steps: 3" in printed and "lr: 0.0005" in printed
    line = main_error(["train", "--config", smoke, "batch_szie=2"], capsys)
    assert "unknown key(s) ['batch_szie']" in line
    line = main_error(["train", "--config", smoke, "content_dir=/no/such/folder"], capsys)
    assert "content folder /no/such/folder does not exist" in line


@pytest.mark.slow
def test_train_command_runs_the_smoke_config(tmp_path: Path, capsys) -> None:
    from streamer.cli import main

    smoke = str(CONFIGS / "train_smoke.yaml")
    out = tmp_path / "smoke"
    overrides = [
        "max_steps=2",
        "checkpoint_every=1",
        "crop_size=32",
        "load_size=40",
        f"output_dir={out}",
    ]
    assert main(["train", "--config", smoke, *overrides]) == 0
    assert f"model: {out / 'video.safetensors'}" in capsys.readouterr().out
    assert [s for s, _ in list_checkpoints(out)] == [1, 2]


def test_attention_stays_float32_under_autocast(model) -> None:
    # Style sums and E[V^2] - M^2 stay float32 even when training with AMP; autocast would
    # otherwise recast the attention's matmuls to half precision.
    from adaattn_video.functional import attention_key

    generator = torch.Generator().manual_seed(0)
    content, style = (
        torch.rand(2, 3, 32, 32, generator=generator),
        torch.rand(1, 3, 32, 32, generator=generator),
    )

    taps, style_taps = model.encoder(content), model.encoder(style)  # outside autocast
    levels = ("relu1_1", "relu2_1", "relu3_1")
    keys = [attention_key([t[n] for n in levels]) for t in (taps, style_taps)]

    def attend() -> tuple[torch.Tensor, torch.Tensor]:
        state = model.transformer.style_state(style_taps["relu3_1"], keys[1])
        return state.weight, model.transformer(taps["relu3_1"], keys[0], state)

    reference_sums, reference = attend()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums, out = attend()
        assert model(content, style).dtype == torch.bfloat16, "the convolutions do use AMP"
    assert sums.dtype == torch.float32 and out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    torch.testing.assert_close(sums, reference_sums, rtol=0, atol=0)


def test_ctrl_c_keeps_the_steps_done(data: dict[str, Path], tmp_path: Path) -> None:
    config = small_config(data, tmp_path / "run", max_steps=10, checkpoint_every=5)
    trainer = Trainer(config)
    step = trainer.train_step

    def interrupted_third_step(batch):
        if trainer.step == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return step(batch)

    trainer.train_step = interrupted_third_step  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert [s for s, _ in list_checkpoints(config.output_dir)] == [2]
    assert Trainer(config.replace(resume="auto")).step == 2


def test_divergence_is_reported_and_never_checkpointed(
    data: dict[str, Path], tmp_path: Path
) -> None:
    from training.trainer import TrainingDivergedError

    trainer = Trainer(
        small_config(data, tmp_path / "run", max_steps=2, checkpoint_every=1, log_every=5)
    )
    with torch.no_grad():
        trainer.params[0].fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="NaN") as raised:
        trainer.train()
    assert isinstance(raised.value, FloatingPointError)
    assert list_checkpoints(trainer.config.output_dir) == []
