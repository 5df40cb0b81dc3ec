"""Live commands: ``live`` (stylize a webcam / stream / file and publish it), ``view`` (watch or
record a published stream), ``control`` (switch style or alpha of a running ``live``), ``keys``
(CURVE keys) and ``bench live`` (latency and fps of a live run)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec, check_alpha, check_style_weights
from configkit.convert import known_keys
from streamer.cli import add_config_option
from streamer.cli.bench_commands import add_speed_model_options, speed_model_spec
from streamer.cli.options import add_dataclass_options
from streamer.cli.options import config_from_args as options_config
from streamer.cli.region_options import add_region_options, regions_from_args
from streamer.cli.reports import write_json_report
from streamer.cli.values import parse_wh, typed_value
from streamer.guard import command_inputs, refuse_overlap
from streamer.live import endpoint_or_none
from streamer.zeromq.control import DEFAULT_CONTROL_ENDPOINT
from streamer.zeromq.publisher import DEFAULT_ENDPOINT

log = logging.getLogger(__name__)


class LiveUsageError(StylestreamError, ValueError):
    """A live command-line or YAML value that cannot be used."""


# -- live --------------------------------------------------------------------------------------
def add_model_arguments(
    parser: argparse.ArgumentParser, *, untrained_default: bool = False, style_size: int = 512
) -> list[str]:
    """The stylizer flags of ``live``/``bench live`` (from :class:`StylizerSpec`)."""
    defaults: dict[str, Any] = {"style_size": style_size}
    if untrained_default:
        defaults["untrained"] = True
    return add_dataclass_options(
        parser.add_argument_group("model and style"), StylizerSpec, defaults=defaults,
        help_overrides={"size": "stylized frame size: WIDTHxHEIGHT or N = longer side "
                        "(default: the source's)"},
    )  # fmt: skip


def _add_live_arguments(parser: argparse.ArgumentParser) -> None:
    from streamer.live import LiveConfig

    add_model_arguments(parser)
    add_dataclass_options(
        parser.add_argument_group("live"), LiveConfig, skip=known_keys(StylizerSpec),
        defaults={"control": DEFAULT_CONTROL_ENDPOINT},
    )  # fmt: skip
    add_region_options(parser)
    add_config_option(parser)


def live_config_from_args(args: argparse.Namespace) -> Any:
    from streamer.live import LiveConfig

    if not typed_value(args, "source", str, optional=True):
        raise LiveUsageError("expected --source (0, /dev/video0, rtsp://..., or a video file)")
    return options_config(LiveConfig, args)


def run_live_command(args: argparse.Namespace) -> int:
    from streamer.live import run_live
    from streamer.pipeline import PipelineUserError

    regions = regions_from_args(args, sequences=False)  # still masks or chroma keys
    if regions is not None and not args.style:
        args.style = list(regions.default_styles)
    config = live_config_from_args(args)
    if config.record:  # the other inputs (source, styles, weights): in run_live()
        refuse_overlap(config.record, command_inputs(args.config, config.curve_keys_dir))

    def announce(info: dict[str, Any]) -> None:
        parts = []
        if info["zmq"]:
            parts.append(f"publishing on {info['zmq']} (watch: stylestream view {info['zmq']})")
        if info["control"]:
            parts.append(
                f"control on {info['control']} (stylestream control {info['control']} "
                "set-style IMAGE)"
            )
        if config.record:
            parts.append(f"recording to {config.record}")
        print("stylestream live: " + "; ".join(parts), file=sys.stderr, flush=True)

    try:
        result = run_live(config, on_ready=announce, regions=regions)
    except PipelineUserError as err:
        raise err.error from err  # one line: the source's own message (stream lost, camera...)
    print(result.summary())
    if config.stylizer.untrained:
        print("NOTE: untrained model (random weights): the output is NOT a stylization")
    interrupted = result.stats.interrupted_by
    if interrupted:
        print(f"stylestream: interrupted by {signal.Signals(interrupted).name}", file=sys.stderr)
        return 128 + interrupted
    return 0


# -- view --------------------------------------------------------------------------------------
def _add_view_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                        help=f"the publisher (default {DEFAULT_ENDPOINT})")  # fmt: skip
    parser.add_argument(
        "--http", default="127.0.0.1:8080", metavar="HOST:PORT",
        help="serve the viewer page here (default 127.0.0.1:8080; port 0: any; 'none': no page)",
    )  # fmt: skip
    parser.add_argument("--record", metavar="OUT.mp4", help="record every received frame")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --record")
    parser.add_argument("--curve-keys", metavar="DIR", help="keys for an encrypted stream")
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument(
        "--timeout-s", type=float, metavar="S",
        help="end with an error when no frame arrives for S seconds (default: keep waiting)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-remote-http", action="store_true", help="serve the page beyond loopback"
    )
    add_config_option(parser)


def run_view_command(args: argparse.Namespace) -> int:
    from streamer.zeromq.viewer import ViewerConfig, run_viewer

    config = ViewerConfig(
        endpoint=typed_value(args, "endpoint", str),
        http=endpoint_or_none(args.http),
        record=typed_value(args, "record", str, optional=True),
        overwrite=typed_value(args, "overwrite", bool),
        curve_keys_dir=typed_value(args, "curve_keys", str, optional=True),
        seconds=typed_value(args, "seconds", float, optional=True),
        frames=typed_value(args, "frames", int, optional=True),
        receive_timeout_s=typed_value(args, "timeout_s", float, optional=True),
        allow_remote_http=typed_value(args, "allow_remote_http", bool),
        stream=typed_value(
            args, "stream", str, optional=True
        ),  # --stream: streamer.cli.serve_commands
    )
    if config.record:
        refuse_overlap(config.record, command_inputs(args.config, config.curve_keys_dir))

    def announce(info: dict[str, Any]) -> None:
        if info["url"]:
            print(f"stylestream view: open {info['url']} in a browser", file=sys.stderr, flush=True)

    try:
        result = run_viewer(config, on_ready=announce)
    except KeyboardInterrupt:
        print("stylestream view: stopped", file=sys.stderr)
        return 130
    print(
        f"received {result.frames} frames in {result.elapsed_s:.1f} s"
        + (f"; recorded {result.recorded} to {result.record}" if result.record else "")
    )
    return 0


# -- control -----------------------------------------------------------------------------------
def _add_control_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the live run's control endpoint")

    def common(target: argparse.ArgumentParser, default: Any) -> None:
        # On the command and on each action, so they may come before or after the action.
        target.add_argument(
            "--timeout-s", type=float, metavar="S",
            default=30.0 if default is None else default,
            help="wait this long for the reply (encoding a style takes a moment; 30)",
        )  # fmt: skip
        target.add_argument(
            "--curve-keys", metavar="DIR", default=default,
            help="keys when the live run uses CURVE",
        )  # fmt: skip

    common(parser, None)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_style = actions.add_parser(
        "set-style", help="switch to a style (or a mix: several images with --weights)"
    )
    set_style.add_argument("images", nargs="+", metavar="IMAGE")
    set_style.add_argument("--weights", type=float, nargs="+", metavar="W")
    set_alpha = actions.add_parser("set-alpha", help="content strength 0..1")
    set_alpha.add_argument("alpha", type=float)
    set_regions = actions.add_parser(
        "set-regions",
        help="replace every region: --region style=IMG,key=green|mask=PNG[,invert=1] (repeat)",
    )
    set_regions.add_argument(
        "--region", action="append", required=True, metavar="style=IMG,mask=PNG[,invert=1]",
        help="as `live --region`: a still mask picture or a chroma key (key=green|blue|#RRGGBB)",
    )  # fmt: skip
    set_regions.add_argument(
        "--uncovered", choices=("style", "content"), default=None,
        help="positions covered by no region: the stream's style (default) or the content",
    )  # fmt: skip
    clear_regions = actions.add_parser("clear-regions", help="back to the plain style")
    status = actions.add_parser("status", help="print the live run's status (JSON)")
    for action in (set_style, set_alpha, set_regions, clear_regions, status):
        common(action, argparse.SUPPRESS)


def run_control_command(args: argparse.Namespace) -> int:
    from streamer.zeromq.control import (
        parse_request,
        send_command,
        set_regions_request,
        set_style_request,
    )

    if args.action == "set-style":
        for image in args.images:
            if not Path(image).is_file():
                raise LiveUsageError(f"style image {image} does not exist")
        check_style_weights(args.weights, len(args.images))  # NaN, inf, < 0, all zero: refused here
        request = set_style_request(args.images, args.weights)
    elif args.action == "set-alpha":
        request = {"command": "set-alpha", "alpha": check_alpha(args.alpha)}
    elif args.action == "set-regions":
        from streamer.regions.specs import RegionPlan, parse_regions

        plan = RegionPlan(parse_regions(args.region), args.uncovered or "style")
        plan.check(sequences=False)  # a missing or empty mask: one line here, nothing sent
        request = set_regions_request(plan.regions, args.uncovered)
    elif args.action == "clear-regions":
        request = {"command": "clear-regions"}
    else:
        request = {"command": "get-status"}
    if getattr(args, "stream", None) is not None:  # set-regions/clear-regions of a serve stream
        request["stream"] = args.stream
    parse_request(json.dumps(request))  # the server's limits (16 styles, finite numbers) first
    reply = send_command(
        args.endpoint, request, timeout_s=args.timeout_s, curve_keys_dir=args.curve_keys
    )
    reply.pop("ok", None)
    if args.action == "set-style":
        print(f"style set to {reply['style_id']} (encoded in {reply['encode_ms']:.0f} ms)")
    elif args.action == "set-alpha":
        print(f"alpha set to {reply['alpha']:g}")
    elif args.action in ("set-regions", "clear-regions"):
        where = f"{reply['stream']}: " if "stream" in reply else ""
        names = [r["style"] for r in reply["regions"]]
        print(
            f"{where}regions set to {', '.join(Path(n).stem for n in names)} (style id "
            f"{reply['style_id']})"
            if names
            else f"{where}regions cleared (style {reply['style_id']})"
        )
    else:
        print(json.dumps(reply, indent=2))
    return 0


# -- keys --------------------------------------------------------------------------------------
def run_keys_generate(args: argparse.Namespace) -> int:
    from streamer.zeromq.curve import KEY_FILES, generate_keys

    inputs = [getattr(args, "config", None)]  # (no inputs today; the policy is the same)
    refuse_overlap(args.directory, inputs, kind="folder", names=KEY_FILES)
    try:
        folder = generate_keys(args.directory, overwrite=args.overwrite)
    except FileExistsError as err:
        raise LiveUsageError(str(err)) from err
    print(
        f"CURVE keys in {folder}:\n"
        f"  publisher:  stylestream live ... --curve-keys {folder}\n"
        f"  subscriber: needs {folder}/server.key and {folder}/client.key_secret "
        f"(stylestream view ENDPOINT --curve-keys DIR)\n"
        f"  more subscribers: copy their public *.key into {folder}/authorized_clients/"
    )
    return 0


# -- bench live --------------------------------------------------------------------------------
def _configure_bench_live(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", default=None, metavar="SRC",
        help="a live source (default: a 30 fps lavfi test pattern at --size, paced in real time)",
    )  # fmt: skip
    parser.add_argument("--size", default="640x360", metavar="WxH", help="frame size (640x360)")
    parser.add_argument("--fps", type=float, default=30.0, help="rate of the test pattern (30)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the run (20)")
    parser.add_argument("--encoding", default="jpeg", choices=("jpeg", "rgb24"))
    add_speed_model_options(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_live_command)


def run_bench_live_command(args: argparse.Namespace) -> int:
    from benchmarks.live_latency import BenchLiveConfig, run_bench_live

    size = parse_wh(args.size, "size")
    assert size is not None
    spec = speed_model_spec(args)
    config = BenchLiveConfig(
        source=typed_value(args, "source", str, optional=True),
        size=size,
        fps=typed_value(args, "fps", float),
        seconds=typed_value(args, "seconds", float),
        encoding=typed_value(args, "encoding", str),
        stylizer=spec,
    )
    report = run_bench_live(config, print_line=print)
    if args.json:
        write_json_report(args.json, report)
    return 0


# -- registration ------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    live = subparsers.add_parser(
        "live",
        help="stylize a webcam, RTSP stream or file live and publish it over ZeroMQ",
        description="Stylize a webcam, a network stream (RTSP, RTMP, HLS, SRT) or a file and "
        "publish every frame over ZeroMQ (and/or record it), with low latency: when the model "
        "is slower than the source, the oldest frames are dropped. Switch style while running "
        "with `stylestream control`. Watch with `stylestream view`.",
    )
    _add_live_arguments(live)
    live.set_defaults(func=run_live_command)

    view = subparsers.add_parser(
        "view",
        help="watch a published stream in a browser page (and/or record it to MP4)",
        description="Subscribe to a `stylestream live` publisher, serve a local page that "
        "shows the stream (MJPEG; works on headless machines via an SSH tunnel), and/or record "
        "it to an MP4 file.",
    )
    _add_view_arguments(view)
    view.set_defaults(func=run_view_command)

    control = subparsers.add_parser(
        "control",
        help="switch style or alpha of a running `stylestream live`",
        description="Send a command to a running `stylestream live` (its --control endpoint): "
        "set-style IMAGE [IMAGE...] [--weights W...], set-alpha A, set-regions --region "
        "style=IMG,key=green|mask=PNG ... [--uncovered content], clear-regions, status.",
    )
    _add_control_arguments(control)
    control.set_defaults(func=run_control_command)

    keys = subparsers.add_parser("keys", help="CURVE keys for encrypted streams")
    keys_actions = keys.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    generate = keys_actions.add_parser(
        "generate", help="create a publisher key pair and a subscriber key pair in DIR"
    )
    generate.add_argument("directory", metavar="DIR")
    generate.add_argument("--overwrite", action="store_true", help="replace existing keys")
    generate.set_defaults(func=run_keys_generate)

    from streamer.cli.bench_commands import add_bench_command

    add_bench_command(
        subparsers,
        "live",
        "end-to-end latency (p50, p95), delivered fps and drops of a live run",
        _configure_bench_live,
    )
