"""``stylestream studio`` (the browser studio: webcam in the page, stylized by the server over
WebRTC) and ``bench studio`` (its round-trip latency, from frame markers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streamer.cli import add_config_option
from streamer.cli.values import parse_wh


def _add_studio_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0: a free one)")
    parser.add_argument(
        "--style", action="append", metavar="IMAGE",
        help="gallery style (repeat; default: the bundled paintings); the first is the default",
    )  # fmt: skip
    parser.add_argument("--size", default="640x360", metavar="WxH", help="stylized size (640x360)")
    parser.add_argument("--alpha", type=float, default=1.0, help="initial style strength (1.0)")
    parser.add_argument(
        "--run-dir", metavar="DIR",
        help="uploads and recordings (default: ./studio-YYYYMMDD-HHMMSS, made when needed)",
    )  # fmt: skip
    model = parser.add_argument_group("model")
    weights = model.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="W", help="video .safetensors (default: cache)")
    weights.add_argument(
        "--untrained", action="store_true",
        help="random weights: output is NOT a stylization (smoke tests, benchmarks)",
    )  # fmt: skip
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    model.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    model.add_argument("--style-size", type=int, default=512, metavar="N")
    model.add_argument("--max-batch", type=int, default=8, metavar="N", help="frames per call")
    out = parser.add_argument_group("outputs and limits")
    out.add_argument(
        "--zmq", metavar="ENDPOINT",
        help="also publish every connection's frames here (topic = connection id)",
    )  # fmt: skip
    out.add_argument("--max-connections", type=int, default=8, metavar="N")
    out.add_argument("--upload-mb", type=float, default=10.0, help="largest style upload (10)")
    security = parser.add_argument_group("security")
    security.add_argument(
        "--allow-remote", action="store_true",
        help="serve beyond loopback: HTTPS (--cert/--key or a generated self-signed "
        "certificate) and an access token in the URL",
    )  # fmt: skip
    security.add_argument("--https", action="store_true", help="HTTPS on loopback too")
    security.add_argument("--cert", metavar="PEM", help="TLS certificate (with --key)")
    security.add_argument("--key", metavar="PEM", help="TLS private key")
    security.add_argument("--token", help="access token (default: random when remote)")
    parser.add_argument("--seconds", type=float, help="stop after S seconds")
    parser.add_argument("--stamp-markers", action="store_true", help=argparse.SUPPRESS)
    add_config_option(parser)


def studio_config_from_args(args: argparse.Namespace) -> Any:
    from streamer.studio.config import StudioConfig

    size = parse_wh(args.size, "size")
    assert size is not None
    return StudioConfig(
        host=args.host,
        port=args.port,
        styles=tuple(args.style or ()),
        size=size,
        alpha=args.alpha,
        run_dir=args.run_dir,
        weights=args.weights,
        untrained=bool(args.untrained),
        device=args.device,
        precision=args.precision,
        style_size=args.style_size,
        max_batch=args.max_batch,
        zmq=args.zmq,
        max_connections=args.max_connections,
        upload_bytes=int(args.upload_mb * 1e6),
        allow_remote=args.allow_remote,
        https=args.https,
        cert=args.cert,
        key=args.key,
        token=args.token,
        seconds=args.seconds,
        stamp_markers=args.stamp_markers,
    )


def run_studio_command(args: argparse.Namespace) -> int:
    from streamer.studio.app import run_studio
    from streamer.studio.config import require_studio_packages

    require_studio_packages()
    config = studio_config_from_args(args)
    if config.untrained:
        print("NOTE: untrained model (random weights): the output is NOT a stylization")

    def announce(info: Any) -> None:
        lines = [f"stylestream studio: open {info.url}"]
        if info.cert is not None and config.cert is None:
            from streamer.studio.tls import fingerprint

            lines.append(
                f"  self-signed certificate {info.cert} (give your own with --cert/--key): the "
                f"browser warns once; accept it only if its SHA-256 fingerprint is "
                f"{fingerprint(info.cert)}"
            )
        if info.token:
            lines.append("  the URL carries the access token: share it only with your viewers")
        if info.zmq:
            lines.append(f"  publishing on {info.zmq} (topic = connection id)")
        print("\n".join(lines), file=sys.stderr, flush=True)

    status = run_studio(config, on_ready=announce, handle_signals=True)
    total = status["engine"]["total"]
    print(
        f"studio ended: {status['connections_closed']} connection(s) served, "
        f"{total['batches']} model calls"
    )
    return 0


# -- bench studio ----------------------------------------------------------------------------------
def _configure_bench_studio(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="320x180", metavar="WxH", help="camera = stylized size")
    parser.add_argument("--fps", type=int, default=15, help="fake camera rate (15)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time (20)")
    parser.add_argument("--weights", metavar="W", help="default: random weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_studio_command)


def run_bench_studio_command(args: argparse.Namespace) -> int:
    from streamer.studio.bench import BenchStudioConfig, run_bench_studio
    from streamer.studio.config import require_studio_packages

    require_studio_packages()
    size = parse_wh(args.size, "size")
    assert size is not None
    config = BenchStudioConfig(
        size=size,
        fps=args.fps,
        seconds=args.seconds,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
    )
    report = run_bench_studio(config, print_line=print)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    studio = subparsers.add_parser(
        "studio",
        help="the browser studio: your webcam in a page, stylized by the server (WebRTC)",
        description="Serve a page where the browser's camera is sent to the server over "
        "WebRTC, stylized (each browser its own stream of the multi-stream engine, all batched "
        "on one model) and sent back in real time. Pick a painting, upload your own, mix two, "
        "set the strength, take snapshots, record on the server. Loopback by default; "
        "--allow-remote serves HTTPS with an access token.",
    )
    _add_studio_arguments(studio)
    studio.set_defaults(func=run_studio_command)
    from streamer.cli.bench import add_bench_command

    add_bench_command(
        subparsers,
        "studio",
        "round-trip latency of the browser studio (headless chromium, fake camera with frame "
        "markers)",
        _configure_bench_studio,
    )
