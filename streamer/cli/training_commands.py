"""``stylestream train``, ``stylestream eval`` and ``stylestream bench train``.

Thin wrappers: arguments -> a typed config -> a function in :mod:`training` that tests call too.

    stylestream train --config configs/train_video.yaml content_dir=coco style_dir=wikiart
    torchrun --nproc_per_node 4 --no-python stylestream train --config configs/train_video.yaml
    stylestream eval clip.mp4 --style wave.jpg --checkpoint video=runs/video/video.safetensors
    stylestream eval --synthetic pan          # check the metric on a clip of known motion
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import (
    StylizerSpec,
    format_size,
    parse_size,
    resolve_device,
    resolve_precision,
)
from configkit.checks import at_least, positive
from configkit.convert import option, option_like
from streamer.cli.clips import read_clip
from streamer.cli.reports import write_json_report
from streamer.cli.values import format_wh, wh
from streamer.guard import guard_declared
from streamer.temporal.options import TemporalOptions
from training.config import TrainConfig


class EvalUsageError(StylestreamError, ValueError):
    """``stylestream eval`` was given an impossible combination of options."""


# -- train -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainOptions:
    """``train``: the training config (YAML keys = ``--key value`` flags = ``KEY=VALUE``
    overrides), and whether to print it instead of training."""

    train: TrainConfig = option(flatten=True)
    overrides: tuple[str, ...] = option(
        (), "override a config key, e.g. lr=2e-4 batch_size=4 resume=auto", positional=True,
        metavar="KEY=VALUE",
    )  # fmt: skip
    print_config: bool = option(False, "print the resolved config and exit")
    config_file: str | None = option(None, cli=False, role="input")


def apply_overrides(data: dict[str, Any]) -> dict[str, Any]:
    """``train``'s ``prepare`` step: ``KEY=VALUE`` overrides win over flags and the YAML."""
    from configkit.convert import check_keys
    from training.config import TrainConfigError, parse_overrides

    raw = data.pop("overrides", ())
    overrides = parse_overrides([raw] if isinstance(raw, str) else list(raw or ()))
    check_keys(TrainConfig, overrides, "override", TrainConfigError)
    return {**data, **overrides}


def run_train(args: TrainOptions) -> int:
    import yaml

    config = args.train
    guard_declared(args)  # output_dir is no data folder, weights file or the config file
    # An unavailable device or an impossible precision: one line now, not a traceback later.
    resolve_precision(config.precision, resolve_device(config.device), training=True)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from training.trainer import train

    main_rank = int(os.environ.get("RANK", "0")) == 0
    if not main_rank:  # under torchrun: rank 0 reports, the others only warn
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    result = train(config)
    if main_rank:
        print(f"trained to step {result.final_step}")
        for path in result.checkpoints[-1:]:
            print(f"last training checkpoint: {path}")
        if result.export_path is not None:
            print(f"model: {result.export_path}  (use with --weights)")
        if result.skipped_files:
            print(f"skipped {result.skipped_files} unreadable file(s)")
    return 0


# -- eval --------------------------------------------------------------------------------------
def _checkpoints(value: Any) -> tuple[tuple[str, str], ...]:
    """``[LABEL=]FILE`` items -> (label, path); the label defaults to the file's stem."""
    result = []
    for text in [value] if isinstance(value, str) else value:
        label, sep, path = str(text).partition("=")
        if not sep:
            result.append((Path(str(text)).stem, str(text)))
        elif not label or not path:
            raise ValueError(f"expected [LABEL=]FILE.safetensors, got {text!r}")
        else:
            result.append((label, path))
    return tuple(result)


def _work_sizes(value: Any) -> tuple[int | tuple[int, int] | None, ...]:
    """``--work-size 384 640x360 full`` -> (384, (360, 640), None)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(
        None if item is None or str(item).lower() in ("full", "none") else parse_size(item)
        for item in items
    )


def _format_work_sizes(value: tuple[Any, ...]) -> list[Any]:
    return ["full" if size is None else format_size(size) for size in value]


@dataclass(frozen=True)
class EvalOptions:
    clip: str | None = option(
        None, "video file or folder of frames", positional=True, metavar="CLIP", role="input"
    )
    synthetic: Literal["pan", "zoom", "static"] | None = option(
        None, "use a clip of exactly known motion made from a photo (checks the metric too)"
    )
    synthetic_image: str | None = option(
        None, "photo for --synthetic", metavar="IMAGE", role="input"
    )
    frames: int = option(12, "frames of --synthetic", metavar="N", check=positive)
    speed: float = option(2.0, "--synthetic pan px/frame or zoom %/frame")
    checkpoint: tuple[tuple[str, str], ...] = option(
        (), "a stylestream .safetensors model; repeat to compare", metavar="[LABEL=]FILE",
        parse=_checkpoints, repeat=True, role="declared",
    )  # fmt: skip
    untrained: tuple[Literal["video", "image"], ...] = option(
        (), "add a random-weights model (pipeline checks only; NOT a stylization)",
        metavar="video|image", repeat=True,
    )  # fmt: skip
    size: tuple[int, int] | None = option(
        None, "resize frames to WIDTHxHEIGHT", metavar="WxH", parse=wh, format=format_wh
    )
    max_frames: int | None = option(None, "use the first N frames", metavar="N", check=positive)
    styles: tuple[str, ...] = option_like(
        StylizerSpec, "styles", help="style image; repeat for several (default: a bundled one)"
    )
    style_size: int | None = option_like(
        StylizerSpec, "style_size", None, "style longer side (default: native size)"
    )
    device: str = option_like(StylizerSpec, "device")
    precision: str = option_like(StylizerSpec, "precision")
    encoder_family: Literal["vgg_normalised", "torchvision_vgg19"] = option(
        "vgg_normalised", "VGG the style/content losses look through"
    )
    encoder_weights: str | None = option(
        None, "its weights (vgg_normalised.pth)", metavar="FILE", role="input"
    )
    allow_random_encoder: bool = option(
        False, "losses through a random VGG (tests only; the numbers mean nothing)"
    )
    json: str | None = option(
        None, "also write the report as JSON", metavar="OUT.json", role="output"
    )
    temporal: tuple[str, ...] = option(
        ("off", "flow"), "temporal modes to measure (off, stats, flow; one row each per model, "
        "style, keyframe interval and work size)", metavar="MODE",
    )  # fmt: skip
    keyframe_interval: tuple[int, ...] = option(
        (1,), "keyframe intervals to measure (each >= 1)", metavar="N"
    )
    work_size: tuple[int | tuple[int, int] | None, ...] = option(
        (None,), "work sizes to measure (N, WxH, or 'full')", metavar="N|WxH|full",
        parse=_work_sizes, format=_format_work_sizes,
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.temporal_settings()  # a bad value: one line, before any work

    def temporal_settings(self) -> list[TemporalOptions]:
        """Every combination of ``temporal`` x ``keyframe_interval`` x ``work_size`` but the
        plain per-frame one (always measured: it is the reference), in the order given."""
        combos = itertools.product(self.temporal, self.keyframe_interval, self.work_size)
        settings = [TemporalOptions(temporal=t, keyframe_interval=k, work_size=w)  # type: ignore[arg-type]
                    for t, k, w in combos]  # fmt: skip
        return list(dict.fromkeys(s for s in settings if s.active))

    config_file: str | None = option(None, cli=False, role="input")

    def io_paths(self) -> tuple[list[str], list[str]]:
        """The --checkpoint files (``[LABEL=]FILE``)."""
        return [path for _label, path in self.checkpoint], []

    def spec(self) -> StylizerSpec:
        """The stylizer settings of the run (checked like every command's)."""
        return StylizerSpec(
            styles=self.styles, style_size=self.style_size, device=self.device,
            precision=self.precision,  # type: ignore[arg-type]
        )  # fmt: skip


def _eval_models(args: EvalOptions) -> dict[str, Any]:
    """label -> model: the --checkpoint files, then the --untrained variants."""
    from adaattn_video.checkpoint import load_checkpoint, open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL

    models: dict[str, Any] = {}
    for label, path in args.checkpoint:
        if label in models:
            raise EvalUsageError(f"two --checkpoint entries are labelled {label!r}; use LABEL=FILE")
        models[label] = load_checkpoint(path)
    for variant in args.untrained or ():
        config = VIDEO_MODEL if variant == "video" else IMAGE_MODEL
        models[f"untrained-{variant}"] = open_model(None, untrained=True, config=config)
    return models


def _eval_clip(args: EvalOptions) -> tuple[Any, Any, str, dict[str, Any] | None]:
    """(frames, motion, clip name, metric check): a synthetic clip of exactly known motion
    (with the metric's own check against it), or the CLIP read through the streamer's sources."""
    from adaattn_video.assets import DEFAULT_CONTENT
    from adaattn_video.image_io import read_image
    from training.evaluate import check_metric, estimate_motion, synthetic_clip

    if args.synthetic is None:
        frames = read_clip(args.clip, max_frames=args.max_frames, size=args.size)
        return frames, estimate_motion(frames), str(args.clip), None
    source = args.synthetic_image or DEFAULT_CONTENT
    image = read_image(source).permute(1, 2, 0).numpy()
    size = args.size or (128, 128)
    check = check_metric(
        image, motion=args.synthetic, frames=args.frames, size=size, speed=args.speed
    )
    frames, motion = synthetic_clip(
        image, frames=args.frames, size=size, motion=args.synthetic, speed=args.speed
    )
    print(
        f"metric check ({args.synthetic}, {args.frames} frames {size[1]}x{size[0]}): DIS flow "
        f"end-point error {check['flow_epe_px']:.3f} px; input warping error "
        f"{check['input_error_exact']:.5f} with the exact flow, "
        f"{check['input_error_dis']:.5f} with DIS"
    )
    return frames, motion, f"synthetic {args.synthetic} over {Path(source).name}", check


def run_eval(args: EvalOptions) -> int:
    import numpy as np

    from adaattn_video.assets import DEFAULT_STYLE
    from adaattn_video.image_io import read_image
    from streamer.temporal.stylizer import TemporalStylizer
    from training.evaluate import evaluate
    from training.losses import load_loss_encoder

    guard_declared(args)  # --json never onto the clip, a checkpoint, a style or the config
    if args.clip is None and args.synthetic is None:
        raise EvalUsageError(
            "give a CLIP (video file or frame folder) or --synthetic pan|zoom|static"
        )
    if args.clip is not None and args.synthetic is not None:
        raise EvalUsageError("give either a CLIP or --synthetic, not both")
    spec = args.spec()
    device = resolve_device(spec.device)  # an unavailable device: one line, before any work
    precision = resolve_precision(spec.precision, device)
    models = _eval_models(args)
    styles = list(spec.styles) or ([str(DEFAULT_STYLE)] if models else [])
    for style in styles:
        read_image(style)  # a bad style path fails now, before any model runs
    frames, motion, clip_name, metric_check = _eval_clip(args)

    loss_encoder = None
    wants_losses = (
        args.encoder_weights
        or args.allow_random_encoder
        or args.encoder_family == "torchvision_vgg19"
    )
    if models and wants_losses:
        loss_encoder, _ = load_loss_encoder(
            args.encoder_family, args.encoder_weights, allow_random=args.allow_random_encoder
        )
    report = evaluate(
        np.asarray(frames), motion, models, styles, clip_name=clip_name, device=device,
        precision=precision, style_size=spec.style_size, loss_encoder=loss_encoder,
        settings=args.temporal_settings(), wrap=TemporalStylizer,
    )  # fmt: skip
    print(report.table())
    if models and loss_encoder is None:
        print("(style/content losses need --encoder-weights vgg_normalised.pth)")
    if args.json:
        data = report.to_dict()
        if metric_check is not None:
            data["metric_check"] = metric_check
        write_json_report(args.json, data)
    return 0


# -- bench train -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchTrainOptions:
    size: int = option(256, "crop side", metavar="N", check=positive)
    batch_size: int = option(2, "per process", metavar="N", check=positive)
    steps: int = option(3, "timed steps", metavar="N", check=positive)
    warmup: int = option(1, "untimed steps first", metavar="N", check=at_least(0))
    processes: tuple[int, ...] = option(
        (1, 2), "process counts to compare (DDP, gloo on CPU / NCCL on CUDA)", metavar="N",
        check=at_least(1),
    )  # fmt: skip
    threads: int | None = option(
        None, "CPU threads in total, split between processes (default: all cores)",
        metavar="N", check=positive,
    )  # fmt: skip
    device: str = option("cpu", "cpu or cuda")
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "training precision")
    json: str | None = option(
        None, "also write the numbers as JSON", metavar="OUT.json", role="output"
    )


def run_bench_train(args: BenchTrainOptions) -> int:
    guard_declared(args)  # --json never onto an input
    from benchmarks.train_throughput import TrainBenchConfig, format_results, run_train_benchmark

    resolve_device(args.device)  # an unavailable device: one line, not a traceback in a worker
    config = TrainBenchConfig(
        size=args.size, batch_size=args.batch_size, steps=args.steps, warmup_steps=args.warmup,
        processes=args.processes, threads=args.threads, device=args.device,
        precision=args.precision,
    )  # fmt: skip
    results = run_train_benchmark(config)
    print(format_results(config, results))
    if args.json:
        write_json_report(args.json, [dataclasses.asdict(r) for r in results])
    return 0
