"""``stylestream studio`` (the browser studio: webcam in the page, stylized by the server over
WebRTC) and ``bench studio`` (its round-trip latency, from frame markers)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from adaattn_video.settings import StylizerSpec
from configkit.convert import iter_keys, known_keys
from streamer.cli import add_config_option
from streamer.cli.options import add_dataclass_options, config_from_args
from streamer.cli.reports import write_json_report

# The StylizerSpec keys the studio has (it mixes styles on the page: no --style-weights).
_MODEL_KEYS = (
    "style", "size", "alpha", "weights", "untrained", "model", "device", "precision",
    "style_size", "max_memory",
)  # fmt: skip
_MODEL_HELP = {
    "style": "gallery style (repeat; default: the bundled paintings); the first is the default",
    "size": "stylized (and returned) size WIDTHxHEIGHT; the camera is cropped to its shape",
    "alpha": "initial style strength 0..1",
}


def _add_studio_arguments(parser: argparse.ArgumentParser) -> None:
    from streamer.studio.config import StudioConfig

    add_dataclass_options(
        parser.add_argument_group("model and styles"), StudioConfig, only=_MODEL_KEYS,
        defaults={"size": "640x360"}, help_overrides=_MODEL_HELP,
    )  # fmt: skip
    add_dataclass_options(
        parser.add_argument_group("studio"), StudioConfig,
        skip=(*known_keys(StylizerSpec), "stamp_markers"), defaults={"upload_mb": 10},
    )  # fmt: skip
    add_dataclass_options(
        parser, StudioConfig, only=("stamp_markers",),
        help_overrides={"stamp_markers": argparse.SUPPRESS},
    )  # fmt: skip
    add_config_option(parser)


def studio_config_from_args(args: argparse.Namespace) -> Any:
    """Flags and ``--config`` YAML (already the parser's defaults) -> StudioConfig."""
    from streamer.studio.config import StudioConfig, StudioConfigError

    keys = [key for key, _, _ in iter_keys(StudioConfig) if key != "style_weights"]
    return config_from_args(StudioConfig, args, keys=keys, error=StudioConfigError)


def run_studio_command(args: argparse.Namespace) -> int:
    from streamer.studio.config import require_studio_packages
    from streamer.studio.server import run_studio

    require_studio_packages()
    config = studio_config_from_args(args)
    if config.stylizer.untrained:
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
    from benchmarks.studio_latency import BenchStudioConfig

    add_dataclass_options(
        parser, BenchStudioConfig,
        only=("size", "fps", "seconds", "weights", "model", "device", "precision"),
        defaults={"size": "320x180"},
        help_overrides={"size": "camera = stylized size WIDTHxHEIGHT",
                        "weights": "a .safetensors checkpoint (default: random weights)"},
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_studio_command)


def run_bench_studio_command(args: argparse.Namespace) -> int:
    from benchmarks.studio_latency import (
        BenchStudioConfig,
        BenchStudioConfigError,
        run_bench_studio,
    )
    from streamer.studio.config import require_studio_packages

    require_studio_packages()
    keys = ("size", "fps", "seconds", "weights", "model", "device", "precision")
    config = config_from_args(BenchStudioConfig, args, keys=keys, error=BenchStudioConfigError)
    report = run_bench_studio(config, print_line=print)
    if args.json:
        write_json_report(args.json, report)
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
    from streamer.cli.bench_commands import add_bench_command

    add_bench_command(
        subparsers,
        "studio",
        "round-trip latency of the browser studio (headless chromium, fake camera with frame "
        "markers)",
        _configure_bench_studio,
    )
