"""``stylestream train``, ``stylestream eval`` and ``stylestream bench train``.

Thin wrappers: arguments -> a typed config -> a function in :mod:`training` that tests call too.

    stylestream train --config configs/train_video.yaml content_dir=coco style_dir=wikiart
    torchrun --nproc_per_node 4 --no-python stylestream train --config configs/train_video.yaml
    stylestream eval clip.mp4 --style wave.jpg --checkpoint video=runs/video/video.safetensors
    stylestream eval --synthetic pan          # check the metric on a clip of known motion
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec, resolve_device, resolve_precision
from configkit.convert import check_keys
from streamer.cli import add_config_option
from streamer.cli.clips import read_clip
from streamer.cli.options import add_dataclass_options, namespace_values
from streamer.cli.options import config_from_args as options_config
from streamer.cli.reports import write_json_report
from streamer.cli.values import positive_int, wh_arg

EVAL_STYLIZER_KEYS = ("style", "style_size", "device", "precision")


class EvalUsageError(StylestreamError, ValueError):
    """``stylestream eval`` was given an impossible combination of options."""


# -- train -------------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    import yaml

    from training.config import TrainConfig, TrainConfigError, parse_overrides

    values = namespace_values(args, args.train_keys)
    overrides = parse_overrides(args.overrides)
    check_keys(TrainConfig, overrides, "override", TrainConfigError)
    values.update(overrides)
    config = TrainConfig.from_mapping(values, source=args.config or "command line")
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


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from training.config import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train the temporally stable video model on your photos and paintings",
        description="Train the video AdaAttN (cosine attention + image-similarity loss). "
        "Settings: the keys of a YAML file given with --config (see configs/train_video.yaml, "
        "every key documented there), then --key value flags or KEY=VALUE overrides (the same "
        "keys). Resume with resume=auto. "
        "Several GPUs: torchrun --nproc_per_node N --no-python stylestream train ...",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="override a config key, e.g. lr=2e-4 batch_size=4 resume=auto",
    )  # fmt: skip
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    keys = add_dataclass_options(
        parser.add_argument_group("config keys (see configs/train_video.yaml)"), TrainConfig
    )
    parser.set_defaults(train_keys=tuple(keys))
    add_config_option(parser)
    parser.set_defaults(func=run_train)


# -- eval --------------------------------------------------------------------------------------
def _checkpoint_arg(text: str) -> tuple[str, str]:
    """``[LABEL=]FILE`` -> (label, path); the label defaults to the file's stem."""
    label, sep, path = text.partition("=")
    if not sep:
        return Path(text).stem, text
    if not label or not path:
        raise argparse.ArgumentTypeError(f"expected [LABEL=]FILE.safetensors, got {text!r}")
    return label, path


def run_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from adaattn_video.assets import DEFAULT_CONTENT, DEFAULT_STYLE
    from adaattn_video.checkpoint import load_checkpoint, open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
    from adaattn_video.image_io import read_image
    from training.evaluate import check_metric, estimate_motion, evaluate, synthetic_clip
    from training.losses import load_loss_encoder

    if args.clip is None and args.synthetic is None:
        raise EvalUsageError(
            "give a CLIP (video file or frame folder) or --synthetic pan|zoom|static"
        )
    if args.clip is not None and args.synthetic is not None:
        raise EvalUsageError("give either a CLIP or --synthetic, not both")
    spec = options_config(StylizerSpec, args, keys=EVAL_STYLIZER_KEYS)
    device = resolve_device(spec.device)  # an unavailable device: one line, before any work
    precision = resolve_precision(spec.precision, device)
    models = {}
    for label, path in args.checkpoint or []:
        if label in models:
            raise EvalUsageError(f"two --checkpoint entries are labelled {label!r}; use LABEL=FILE")
        models[label] = load_checkpoint(path)
    if args.untrained:
        for variant in args.untrained:
            config = VIDEO_MODEL if variant == "video" else IMAGE_MODEL
            models[f"untrained-{variant}"] = open_model(None, untrained=True, config=config)
    styles = list(spec.styles) or ([str(DEFAULT_STYLE)] if models else [])
    for style in styles:
        read_image(style)  # a bad style path fails now, before any model runs

    metric_check = None
    if args.synthetic is not None:
        source = args.synthetic_image or DEFAULT_CONTENT
        image = read_image(source).permute(1, 2, 0).numpy()
        size = args.size or (128, 128)
        metric_check = check_metric(
            image, motion=args.synthetic, frames=args.frames, size=size, speed=args.speed
        )
        frames, motion = synthetic_clip(
            image, frames=args.frames, size=size, motion=args.synthetic, speed=args.speed
        )
        clip_name = f"synthetic {args.synthetic} over {Path(source).name}"
        print(
            f"metric check ({args.synthetic}, {args.frames} frames {size[1]}x{size[0]}): DIS flow "
            f"end-point error {metric_check['flow_epe_px']:.3f} px; input warping error "
            f"{metric_check['input_error_exact']:.5f} with the exact flow, "
            f"{metric_check['input_error_dis']:.5f} with DIS"
        )
    else:
        frames = read_clip(args.clip, max_frames=args.max_frames, size=args.size)
        motion = estimate_motion(frames)
        clip_name = str(args.clip)

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


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure temporal stability (warping error) of models on a clip",
        description="Warping error (DIS flow on the input frames, "
        "forward-backward occlusion mask, mean |o_t+1 - warp(o_t)| in [0, 1]) for the input "
        "itself (the floor) and each checkpoint and style, plus global style / content losses "
        "and fps. Typically compare the video model with the published image model.",
    )
    parser.add_argument("clip", nargs="?", metavar="CLIP", help="video file or folder of frames")
    parser.add_argument(
        "--synthetic", choices=("pan", "zoom", "static"),
        help="use a clip of exactly known motion made from a photo (checks the metric too)",
    )  # fmt: skip
    parser.add_argument("--synthetic-image", metavar="IMAGE", help="photo for --synthetic")
    parser.add_argument("--frames", type=positive_int, default=12, help="frames of --synthetic")
    parser.add_argument(
        "--speed", type=float, default=2.0, help="--synthetic pan px/frame or zoom %%/frame"
    )
    parser.add_argument(
        "--checkpoint", action="append", type=_checkpoint_arg, metavar="[LABEL=]FILE",
        help="a stylestream .safetensors model; repeat to compare",
    )  # fmt: skip
    parser.add_argument(
        "--untrained", action="append", choices=("video", "image"),
        help="add a random-weights model (pipeline checks only; NOT a stylization)",
    )  # fmt: skip
    parser.add_argument("--size", type=wh_arg, metavar="WxH", help="resize frames to WIDTHxHEIGHT")
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="use the first N frames"
    )
    add_dataclass_options(
        parser.add_argument_group("stylizer"), StylizerSpec, only=EVAL_STYLIZER_KEYS,
        defaults={"style_size": None},
        help_overrides={"style": "style image; repeat for several (default: a bundled one)",
                        "style_size": "style longer side (default: native size)"},
    )  # fmt: skip
    parser.add_argument(
        "--encoder-family", choices=("vgg_normalised", "torchvision_vgg19"), default="vgg_normalised",
        help="VGG the style/content losses look through",
    )  # fmt: skip
    parser.add_argument(
        "--encoder-weights", metavar="FILE", help="its weights (vgg_normalised.pth)"
    )
    parser.add_argument(
        "--allow-random-encoder", action="store_true",
        help="losses through a random VGG (tests only; the numbers mean nothing)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="OUT.json", help="also write the report as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_eval)


# -- bench train -------------------------------------------------------------------------------
def run_bench_train(args: argparse.Namespace) -> int:
    from benchmarks.train_throughput import TrainBenchConfig, format_results, run_train_benchmark

    resolve_device(args.device)  # an unavailable device: one line, not a traceback in a worker
    config = TrainBenchConfig(
        size=args.size, batch_size=args.batch_size, steps=args.steps, warmup_steps=args.warmup,
        processes=tuple(args.processes), threads=args.threads, device=args.device,
        precision=args.precision,
    )  # fmt: skip
    results = run_train_benchmark(config)
    print(format_results(config, results))
    if args.json:
        write_json_report(args.json, [dataclasses.asdict(r) for r in results])
    return 0


def _bench_parser(
    subparsers: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    """A ``bench NAME`` parser: through streamer.cli.bench_commands when it exists, else inside the
    ``bench`` group another command module created (or a new one)."""
    try:
        from streamer.cli.bench_commands import add_bench_command
    except ImportError:
        add_bench_command = None
    if add_bench_command is not None:
        return add_bench_command(subparsers, name, help=help_text)
    bench = subparsers.choices.get("bench") or subparsers.add_parser(
        "bench", help="benchmarks that print numbers"
    )
    groups = [a for a in bench._actions if isinstance(a, argparse._SubParsersAction)]
    group = (
        groups[0]
        if groups
        else bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    )
    return group.add_parser(name, help=help_text)


def _add_bench_train(subparsers: argparse._SubParsersAction) -> None:
    parser = _bench_parser(
        subparsers, "train", "training throughput (samples/s), 1 vs several processes"
    )
    parser.add_argument("--size", type=positive_int, default=256, help="crop side (default 256)")
    parser.add_argument("--batch-size", type=positive_int, default=2, help="per process")
    parser.add_argument("--steps", type=positive_int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument(
        "--processes", type=positive_int, nargs="+", default=[1, 2],
        help="process counts to compare (DDP, gloo on CPU / NCCL on CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=None,
        help="CPU threads in total, split between processes (default: all cores)",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--json", metavar="OUT.json", help="also write the numbers as JSON")
    parser.set_defaults(func=run_bench_train)


def register(subparsers: argparse._SubParsersAction) -> None:
    _add_train(subparsers)
    _add_eval(subparsers)
    _add_bench_train(subparsers)
