"""``stylestream studio`` (the browser studio: webcam in the page, stylized by the server over
WebRTC) and ``bench studio`` (its round-trip latency, from frame markers)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from adaattn_video.settings import StylizerSpec, format_size, parse_wh
from configkit.convert import option, option_like
from streamer.cli.reports import write_json_report
from streamer.guard import guard_declared

STUDIO_DEFAULTS = {"size": "640x360"}
STUDIO_HELP = {
    "style": "gallery style (repeat; default: the bundled paintings); the first is the default",
    "size": "stylized (and returned) size WIDTHxHEIGHT; the camera is cropped to its shape",
    "alpha": "initial style strength 0..1",
    "stamp_markers": "==SUPPRESS==",  # bench studio's, not a user's
}


def run_studio_command(config: Any) -> int:
    """``studio``: its config is :class:`~streamer.studio.config.StudioConfig` itself."""
    from streamer.studio.config import require_studio_packages
    from streamer.studio.server import run_studio

    require_studio_packages()
    guard_declared(config)  # --run-dir never an input (cert, key, styles, weights, config file)
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
    signum = status.get("interrupted_by")
    return 128 + signum if signum else 0  # 130 for Ctrl-C, 143 for SIGTERM, like the others


# -- bench studio ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchStudioOptions:
    size: tuple[int, int] = option(
        (180, 320), "camera = stylized size WIDTHxHEIGHT", metavar="WxH", parse=parse_wh,
        format=format_size,
    )  # fmt: skip
    fps: int = option(15, "fake camera rate", metavar="F")
    seconds: float = option(20.0, "measured time", metavar="S")
    weights: str | None = option_like(
        StylizerSpec, "weights", help="a .safetensors checkpoint (default: random weights)"
    )
    model: str = option_like(StylizerSpec, "model")
    device: str = option_like(StylizerSpec, "device")
    precision: str = option_like(StylizerSpec, "precision")
    json: str | None = option(None, "also write the numbers as JSON", metavar="FILE", role="output")
    config_file: str | None = option(None, cli=False, role="input")


def run_bench_studio_command(args: BenchStudioOptions) -> int:
    guard_declared(args)  # --json never onto --weights
    from benchmarks.studio_latency import (
        BenchStudioConfig,
        BenchStudioConfigError,
        run_bench_studio,
    )
    from streamer.studio.config import require_studio_packages

    require_studio_packages()
    from configkit.convert import from_mapping

    values = {
        "size": list(args.size[::-1]), "fps": args.fps, "seconds": args.seconds,
        "weights": args.weights, "model": args.model, "device": args.device,
        "precision": args.precision,
    }  # fmt: skip
    config = from_mapping(BenchStudioConfig, values, source="", error=BenchStudioConfigError)
    report = run_bench_studio(config, print_line=print)
    if args.json:
        write_json_report(args.json, report)
    return 0
