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
from streamer.cli import ReplaceAppend, add_config_option
from streamer.cli.values import float_list, parse_wh, typed_value
from streamer.control import DEFAULT_CONTROL_ENDPOINT
from streamer.sinks.zmq import DEFAULT_ENDPOINT

log = logging.getLogger(__name__)

NONE_WORDS = ("none", "off", "")


class LiveUsageError(StylestreamError, ValueError):
    """A live command-line or YAML value that cannot be used."""


# -- value parsing (flags and YAML go through the same checks) --------------------------------
def _endpoint_or_none(value: Any) -> str | None:
    if value is None or str(value).strip().lower() in NONE_WORDS:
        return None
    return str(value)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


# -- live --------------------------------------------------------------------------------------
def add_model_arguments(
    parser: argparse.ArgumentParser, *, untrained_default: bool = False
) -> None:
    model = parser.add_argument_group("model")
    weights = model.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights", metavar="W", help="a .safetensors checkpoint (default: cache)"
    )
    weights.add_argument(
        "--untrained", action="store_true", default=untrained_default,
        help="random weights: output is NOT a stylization (smoke tests, benchmarks)",
    )  # fmt: skip
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    model.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
        help="convolution precision (auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32)",
    )  # fmt: skip
    model.add_argument("--alpha", type=float, default=1.0, help="content strength 0..1 (1: full)")
    model.add_argument(
        "--style-size", type=int, default=512, metavar="N",
        help="resize style images so the longer side is N pixels (default 512)",
    )  # fmt: skip


def _add_live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", metavar="SRC",
        help="0 or /dev/video0 (webcam), rtsp://... (or rtmp/http/hls/srt), a video file, "
        "or lavfi:GRAPH",
    )  # fmt: skip
    parser.add_argument(
        "--style", action=ReplaceAppend, metavar="IMAGE",
        help="style image; repeat to mix several (see --style-weights)",
    )  # fmt: skip
    parser.add_argument("--style-weights", type=float, nargs="+", metavar="W")
    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--zmq", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
        help=f"ZeroMQ PUB endpoint (default {DEFAULT_ENDPOINT}; 'none' to publish nothing)",
    )  # fmt: skip
    out.add_argument("--encoding", default="jpeg", choices=("jpeg", "rgb24"), help="payload")
    out.add_argument("--jpeg-quality", type=int, default=90, metavar="Q", help="1..100 (90)")
    out.add_argument(
        "--send-hwm", type=int, default=8, metavar="N",
        help="frames queued per subscriber before a slow one loses frames (8)",
    )  # fmt: skip
    out.add_argument("--record", metavar="OUT.mp4", help="also record the stylized stream")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --record file")
    out.add_argument("--size", metavar="WxH", help="stylized frame size (default: the source's)")
    out.add_argument(
        "--control", default=DEFAULT_CONTROL_ENDPOINT, metavar="ENDPOINT",
        help=f"control endpoint for `stylestream control` (default {DEFAULT_CONTROL_ENDPOINT}; "
        "'none' to disable)",
    )  # fmt: skip
    out.add_argument(
        "--allow-remote-bind", action="store_true",
        help="let --zmq/--control bind beyond loopback (use --curve-keys on a network)",
    )  # fmt: skip
    out.add_argument(
        "--curve-keys", metavar="DIR",
        help="encrypt and accept only authorized subscribers (`stylestream keys generate DIR`)",
    )  # fmt: skip
    add_model_arguments(parser)
    src = parser.add_argument_group("source")
    src.add_argument(
        "--realtime", action="store_true",
        help="play a FILE at its own frame rate, dropping frames like a camera (default: every "
        "frame, as fast as the model goes)",
    )  # fmt: skip
    src.add_argument("--capture-size", metavar="WxH", help="webcam: requested capture size")
    src.add_argument("--capture-fps", type=float, metavar="F", help="webcam: requested rate")
    src.add_argument("--fourcc", metavar="CODE", help="webcam: pixel format, e.g. MJPG")
    src.add_argument("--transport", default="tcp", choices=("tcp", "udp"), help="RTSP transport")
    src.add_argument("--open-timeout-s", type=float, default=10.0, metavar="S")
    src.add_argument("--read-timeout-s", type=float, default=5.0, metavar="S",
                     help="no data for this long = an outage (network) or an error (webcam)")  # fmt: skip
    src.add_argument(
        "--give-up-after-s", type=float, default=60.0, metavar="S",
        help="end with an error after an outage this long (network sources; 60)",
    )  # fmt: skip
    src.add_argument(
        "--during-outage", default="pause", choices=("pause", "repeat"),
        help="publish nothing, or repeat the last frame, while reconnecting",
    )  # fmt: skip
    src.add_argument(
        "--end-of-stream", default="reconnect", choices=("reconnect", "stop"),
        help="when a network stream ends: reconnect (live) or stop (VOD)",
    )  # fmt: skip
    run = parser.add_argument_group("run")
    run.add_argument(
        "--status-interval-s", type=float, default=5.0, metavar="S",
        help="seconds between status lines (0: none)",
    )  # fmt: skip
    run.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    add_config_option(parser)


def live_config_from_args(args: argparse.Namespace) -> Any:
    from streamer.live import LiveConfig

    weights = float_list(args.style_weights, "style_weights")
    source = typed_value(args, "source", str, optional=True)
    if not source:
        raise LiveUsageError("expected --source (0, /dev/video0, rtsp://..., or a video file)")
    return LiveConfig(
        source=source,
        styles=tuple(str(s) for s in _list(args.style)),
        style_weights=weights,
        zmq=_endpoint_or_none(args.zmq),
        encoding=typed_value(args, "encoding", str),
        jpeg_quality=typed_value(args, "jpeg_quality", int),
        send_hwm=typed_value(args, "send_hwm", int),
        record=typed_value(args, "record", str, optional=True),
        overwrite=typed_value(args, "overwrite", bool),
        size=parse_wh(args.size, "size"),
        control=_endpoint_or_none(args.control),
        realtime=typed_value(args, "realtime", bool),
        allow_remote_bind=typed_value(args, "allow_remote_bind", bool),
        curve_keys_dir=typed_value(args, "curve_keys", str, optional=True),
        weights=typed_value(args, "weights", str, optional=True),
        untrained=typed_value(args, "untrained", bool),
        device=typed_value(args, "device", str),
        precision=typed_value(args, "precision", str),
        alpha=typed_value(args, "alpha", float),
        style_size=typed_value(args, "style_size", int, optional=True),
        status_interval_s=typed_value(args, "status_interval_s", float),
        seconds=typed_value(args, "seconds", float, optional=True),
        capture_size=parse_wh(args.capture_size, "capture_size"),
        capture_fps=typed_value(args, "capture_fps", float, optional=True),
        fourcc=typed_value(args, "fourcc", str, optional=True),
        transport=typed_value(args, "transport", str),
        open_timeout_s=typed_value(args, "open_timeout_s", float),
        read_timeout_s=typed_value(args, "read_timeout_s", float),
        give_up_after_s=typed_value(args, "give_up_after_s", float),
        during_outage=typed_value(args, "during_outage", str),
        end_of_stream=typed_value(args, "end_of_stream", str),
    )


def run_live_command(args: argparse.Namespace) -> int:
    from streamer.live import run_live
    from streamer.pipeline import PipelineUserError

    config = live_config_from_args(args)

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
        result = run_live(config, on_ready=announce)
    except PipelineUserError as err:
        raise err.error from err  # one line: the source's own message (stream lost, camera...)
    print(result.summary())
    if config.untrained:
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
    from streamer.viewer import ViewerConfig, run_viewer

    config = ViewerConfig(
        endpoint=typed_value(args, "endpoint", str),
        http=_endpoint_or_none(args.http),
        record=typed_value(args, "record", str, optional=True),
        overwrite=typed_value(args, "overwrite", bool),
        curve_keys_dir=typed_value(args, "curve_keys", str, optional=True),
        seconds=typed_value(args, "seconds", float, optional=True),
        frames=typed_value(args, "frames", int, optional=True),
        receive_timeout_s=typed_value(args, "timeout_s", float, optional=True),
        allow_remote_http=typed_value(args, "allow_remote_http", bool),
        stream=typed_value(args, "stream", str, optional=True),  # --stream: streamer.cli.serve
    )

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
    status = actions.add_parser("status", help="print the live run's status (JSON)")
    for action in (set_style, set_alpha, status):
        common(action, argparse.SUPPRESS)


def run_control_command(args: argparse.Namespace) -> int:
    from streamer.control import send_command, set_style_request

    if args.action == "set-style":
        for image in args.images:
            if not Path(image).is_file():
                raise LiveUsageError(f"style image {image} does not exist")
        request = set_style_request(args.images, args.weights)
    elif args.action == "set-alpha":
        request = {"command": "set-alpha", "alpha": args.alpha}
    else:
        request = {"command": "get-status"}
    reply = send_command(
        args.endpoint, request, timeout_s=args.timeout_s, curve_keys_dir=args.curve_keys
    )
    reply.pop("ok", None)
    if args.action == "set-style":
        print(f"style set to {reply['style_id']} (encoded in {reply['encode_ms']:.0f} ms)")
    elif args.action == "set-alpha":
        print(f"alpha set to {reply['alpha']:g}")
    else:
        print(json.dumps(reply, indent=2))
    return 0


# -- keys --------------------------------------------------------------------------------------
def run_keys_generate(args: argparse.Namespace) -> int:
    from streamer.keys import generate_keys

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
    add_model_arguments(parser, untrained_default=True)
    parser.set_defaults(style_size=256)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_live_command)


def run_bench_live_command(args: argparse.Namespace) -> int:
    from streamer.bench_live import BenchLiveConfig, run_bench_live

    size = parse_wh(args.size, "size")
    assert size is not None
    weights = typed_value(args, "weights", str, optional=True)
    config = BenchLiveConfig(
        source=typed_value(args, "source", str, optional=True),
        size=size,
        fps=typed_value(args, "fps", float),
        seconds=typed_value(args, "seconds", float),
        encoding=typed_value(args, "encoding", str),
        weights=weights,
        untrained=weights is None,
        device=typed_value(args, "device", str),
        precision=typed_value(args, "precision", str),
        style_size=typed_value(args, "style_size", int, optional=True),
    )
    report = run_bench_live(config, print_line=print)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
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
        "set-style IMAGE [IMAGE...] [--weights W...], set-alpha A, status.",
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

    from streamer.cli.bench import add_bench_command

    add_bench_command(
        subparsers,
        "live",
        "end-to-end latency (p50, p95), delivered fps and drops of a live run",
        _configure_bench_live,
    )
