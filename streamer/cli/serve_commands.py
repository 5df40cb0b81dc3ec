"""``stylestream serve`` (many streams, one model), its ``control`` actions (add-stream,
remove-stream, list-streams, ``--stream`` for set-style/set-alpha) and ``bench serve``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import parse_size
from configkit.yaml_loader import parse_overrides
from streamer.cli import add_config_option
from streamer.cli.options import add_dataclass_options, config_from_args
from streamer.cli.reports import write_json_report
from streamer.cli.values import parse_wh
from streamer.guard import command_inputs, refuse_overlap


class ServeUsageError(StylestreamError, ValueError):
    """A serve command-line value that cannot be used."""


# -- serve ---------------------------------------------------------------------------------------
def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from streamer.cli.live_commands import add_model_arguments
    from streamer.serve.config import ServeConfig

    parser.add_argument(
        "--stream", dest="stream_flags", action="append", metavar="NAME=SOURCE",
        help="a stream (repeat for more), styled with --style/--alpha/--size; the YAML's "
        "'streams:' is the full form (per-stream style, alpha, size, record, source options)",
    )  # fmt: skip
    parser.add_argument("--streams", default=None, help=argparse.SUPPRESS)  # YAML only
    add_model_arguments(parser)  # the StylizerSpec flags: the model and the default style
    add_dataclass_options(
        parser.add_argument_group("serve"), ServeConfig, skip=("streams", *_stylizer_keys()),
    )  # fmt: skip
    add_config_option(parser)


def _stylizer_keys() -> list[str]:
    from adaattn_video.settings import StylizerSpec
    from configkit.convert import known_keys

    return known_keys(StylizerSpec)


def serve_config_from_args(args: argparse.Namespace) -> Any:
    """Flags and ``--config`` YAML (already the parser's defaults) -> ServeConfig."""
    from streamer.serve.config import ServeConfig

    streams = list(args.streams or []) if isinstance(args.streams, (list, tuple)) else args.streams
    flag_streams = []
    for text in args.stream_flags or []:
        name, sep, source = str(text).partition("=")
        if not sep or not source:
            raise ServeUsageError(f"--stream: expected NAME=SOURCE, got {text!r}")
        flag_streams.append({"name": name, "source": source})  # style etc.: the server's
    if flag_streams:
        streams = list(streams or []) + flag_streams
    extra = {} if streams is None else {"streams": streams}
    return config_from_args(ServeConfig, args, extra=extra, error=ServeUsageError)


def run_serve_command(args: argparse.Namespace) -> int:
    from streamer.serve.server import run_serve

    config = serve_config_from_args(args)
    for spec in config.streams:  # the other inputs (source, styles): when the stream starts
        if spec.record:
            refuse_overlap(spec.record, command_inputs(args.config, config.curve_keys_dir))

    def announce(info: dict[str, Any]) -> None:
        parts = []
        if info["zmq"]:
            parts.append(f"publishing on {info['zmq']} (stylestream view {info['zmq']})")
        if info["control"]:
            parts.append(f"control on {info['control']} (stylestream control ... list-streams)")
        started = [name for name, problem in info["streams"].items() if problem is None]
        parts.append(f"streams: {', '.join(started) or 'none yet'}")
        print("stylestream serve: " + "; ".join(parts), file=sys.stderr, flush=True)

    result = run_serve(
        config, on_ready=announce, print_status=lambda line: print(line, flush=True),
        handle_signals=True,
    )  # fmt: skip
    print(result.summary())
    if config.stylizer.untrained:
        print("NOTE: untrained model (random weights): the output is NOT a stylization")
    if result.interrupted_by:
        name = signal.Signals(result.interrupted_by).name
        print(f"stylestream: interrupted by {name}", file=sys.stderr)
        return 128 + result.interrupted_by
    return 0


# -- control actions -------------------------------------------------------------------------------
def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _extend_control(control: argparse.ArgumentParser) -> None:
    """Add the serve actions to ``stylestream control`` (defined with ``live``'s commands)."""
    actions = next(a for a in control._actions if isinstance(a, argparse._SubParsersAction))
    original = control.get_default("func")
    control.description = (control.description or "") + (
        " For `stylestream serve`: add-stream, remove-stream, list-streams, and "
        "set-style/set-alpha/set-regions/clear-regions --stream NAME; status gives every "
        "stream's numbers."
    )

    def run(args: argparse.Namespace) -> int:
        if args.action in ("set-regions", "clear-regions"):  # live's, with "stream" when given
            return int(original(args))
        if args.action in ("set-style", "set-alpha") and getattr(args, "stream", None) is None:
            return int(original(args))
        return run_serve_control(args)

    for name in ("set-style", "set-alpha", "set-regions", "clear-regions"):
        action = actions.choices[name]
        action.add_argument("--stream", metavar="NAME", help="the stream of a `serve`")
        action.set_defaults(func=run)
    add = actions.add_parser(
        "add-stream", help="serve: start a stream (same keys as a YAML streams: entry)"
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("source", metavar="SOURCE")
    add.add_argument("--style", action="append", required=True, metavar="IMAGE")
    add.add_argument("--style-weights", type=float, nargs="+", metavar="W")
    add.add_argument("--alpha", type=float)
    add.add_argument("--size", metavar="N|WxH")
    add.add_argument("--record", metavar="OUT.mp4")
    add.add_argument(
        "--region", action="append", metavar="style=IMG,mask=PNG|key=COLOUR",
        help="a region (as `live --region`: still masks and chroma keys; repeat)",
    )  # fmt: skip
    add.add_argument("--uncovered", choices=("style", "content"), default=None)
    add.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any other stream key (YAML value), e.g. --set give_up_after_s=30",
    )  # fmt: skip
    remove = actions.add_parser("remove-stream", help="serve: stop a stream, finalize its record")
    remove.add_argument("name", metavar="NAME")
    listing = actions.add_parser("list-streams", help="serve: the streams and their settings")
    for action in (add, remove, listing):
        action.add_argument("--timeout-s", type=float, default=argparse.SUPPRESS, metavar="S")
        action.add_argument("--curve-keys", default=argparse.SUPPRESS, metavar="DIR")
        action.set_defaults(func=run)


def serve_control_request(args: argparse.Namespace) -> dict[str, Any]:
    """The control request of a serve action (paths made absolute: the server has its cwd)."""
    if args.action == "set-style":
        for image in args.images:
            if not Path(image).is_file():
                raise ServeUsageError(f"style image {image} does not exist")
        request: dict[str, Any] = {
            "command": "set-style",
            "stream": args.stream,
            "styles": [_absolute(s) for s in args.images],
        }
        if args.weights is not None:
            request["weights"] = [float(w) for w in args.weights]
        return request
    if args.action == "set-alpha":
        return {"command": "set-alpha", "stream": args.stream, "alpha": args.alpha}
    if args.action == "remove-stream":
        return {"command": "remove-stream", "stream": args.name}
    if args.action == "list-streams":
        return {"command": "list-streams"}
    for image in args.style:
        if not Path(image).is_file():
            raise ServeUsageError(f"style image {image} does not exist")
    entry: dict[str, Any] = {
        "name": args.name,
        "source": args.source,
        "style": [_absolute(s) for s in args.style],
    }
    if args.style_weights is not None:
        entry["style_weights"] = list(args.style_weights)
    if args.alpha is not None:
        entry["alpha"] = args.alpha
    if args.size is not None:
        try:
            parse_size(args.size)
        except ValueError as err:
            raise ServeUsageError(f"--size: {err}") from err
        entry["size"] = args.size
    if args.record is not None:
        entry["record"] = _absolute(args.record)
    if args.region:
        from streamer.regions.specs import RegionPlan, parse_regions

        plan = RegionPlan(parse_regions(args.region), args.uncovered or "style")
        plan.check(sequences=False)  # a missing mask: one line here, nothing sent
        entry["region"] = [spec.absolute().as_dict() for spec in plan.regions]
    if args.uncovered is not None:
        entry["uncovered"] = args.uncovered
    entry.update(parse_overrides(args.set))  # the one YAML value parser
    return {"command": "add-stream", "stream": entry}


def run_serve_control(args: argparse.Namespace) -> int:
    from streamer.zeromq.control import send_command

    reply = send_command(
        args.endpoint,
        serve_control_request(args),
        timeout_s=args.timeout_s,
        curve_keys_dir=args.curve_keys,
    )
    reply.pop("ok", None)
    if args.action == "set-style":
        print(f"{reply['stream']}: style set to {reply['style_id']}")
    elif args.action == "set-alpha":
        print(f"{reply['stream']}: alpha set to {reply['alpha']:g}")
    elif args.action == "add-stream":
        print(f"stream {reply['added']} added (style {reply['style_id']})")
    elif args.action == "remove-stream":
        print(f"stream {reply['removed']} removed ({reply['frames_out']} frames published)")
    else:
        print(json.dumps(reply, indent=2))
    return 0


# -- bench serve -----------------------------------------------------------------------------------
def _configure_bench_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4], metavar="N")
    parser.add_argument("--size", default="160x96", metavar="WxH", help="frame size (160x96)")
    parser.add_argument("--fps", type=float, default=15.0, help="rate of each test source (15)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (20)")
    parser.add_argument("--weights", metavar="W", help="default: random weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch threads per process (default: cores / processes, at least 1)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_serve_command)


def run_bench_serve_command(args: argparse.Namespace) -> int:
    from benchmarks.serve_scaling import BenchServeConfig, run_bench_serve

    size = parse_wh(args.size, "size")
    assert size is not None
    config = BenchServeConfig(
        streams=tuple(args.streams),
        size=size,
        fps=args.fps,
        seconds=args.seconds,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
    )
    report = run_bench_serve(config, print_line=print)
    if args.json:
        write_json_report(args.json, report)
    return 0


# -- registration ----------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="many live streams, one model: each stream its own style, one ZeroMQ topic each",
        description="Stylize many live streams (webcams, RTSP/RTMP/HLS/SRT, files, lavfi) with "
        "one model: the newest frame of every stream is batched into one model call, each "
        "frame with its stream's style. Streams are published on one ZeroMQ endpoint, one topic "
        "per stream, and can be added, removed and restyled at run time with "
        "`stylestream control`. A stream that fails never stops the others.",
    )
    _add_serve_arguments(serve)
    serve.set_defaults(func=run_serve_command)
    if "control" in subparsers.choices:
        _extend_control(subparsers.choices["control"])
    if "view" in subparsers.choices:
        subparsers.choices["view"].add_argument(
            "--stream", metavar="NAME", help="one stream of a `serve` (default: a grid of all)"
        )
    from streamer.cli.bench_commands import add_bench_command

    add_bench_command(
        subparsers,
        "serve",
        "one serve process with N streams vs N live processes: total fps, latency, batching gain",
        _configure_bench_serve,
    )
