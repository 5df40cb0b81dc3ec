"""Live commands: ``live`` (stylize a webcam / stream / file and publish it), ``view`` (watch or
record a published stream), ``control`` (switch style or alpha of a running ``live``), ``keys``
(CURVE keys) and ``bench live`` (latency and fps of a live run)."""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any, Literal

from adaattn_video.errors import StylestreamError
from configkit.checks import positive
from configkit.convert import option
from streamer.cli.bench_commands import SpeedModel
from streamer.cli.region_options import RegionOptions, with_region_styles
from streamer.cli.reports import write_json_report
from streamer.cli.values import format_wh, wh
from streamer.guard import guard_declared
from streamer.live import LiveConfig, endpoint_or_none
from streamer.temporal.options import preset_option, with_preset
from streamer.zeromq.control import DEFAULT_CONTROL_ENDPOINT
from streamer.zeromq.publisher import DEFAULT_ENDPOINT

log = logging.getLogger(__name__)


class LiveUsageError(StylestreamError, ValueError):
    """A live command-line or YAML value that cannot be used."""


# -- live --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveCommandOptions:
    """``live``: the run (:class:`~streamer.live.LiveConfig`) and its regions."""

    live: LiveConfig = option(flatten=True)
    regions: RegionOptions = option(RegionOptions(), flatten=True)
    outputs: tuple[str, ...] = option(
        (), "YAML only: another name of the 'output' list", cli=False, role="none"
    )
    temporal_preset: str | None = preset_option()
    config_file: str | None = option(None, cli=False, role="input")


def with_outputs_key(data: dict[str, Any]) -> dict[str, Any]:
    """A YAML file's ``outputs:`` list joins ``output:`` (both names work, as in a serve stream
    entry)."""
    extra = data.pop("outputs", None) or ()
    if extra:
        given = data.get("output") or ()
        given = [given] if isinstance(given, str) else list(given)
        data = {**data, "output": [*given, *([extra] if isinstance(extra, str) else extra)]}
    return data


def prepare_live(data: dict[str, Any]) -> dict[str, Any]:
    """``live``'s ``prepare`` step: the ``outputs:`` key, the region styles, then ``--preset``
    (it fills the temporal keys no flag and no YAML key gave)."""
    return with_preset(with_region_styles(with_outputs_key(data)))


LIVE_DEFAULTS = {"control": DEFAULT_CONTROL_ENDPOINT}
MODEL_HELP = {
    "size": "stylized frame size: WIDTHxHEIGHT or N = longer side (default: the source's)"
}


def run_live_command(args: LiveCommandOptions) -> int:
    from streamer.live import run_live
    from streamer.pipeline import PipelineUserError

    config = args.live
    regions = args.regions.plan(sequences=False)  # still masks or chroma keys
    guard_declared(args)  # source, styles, weights, keys, regions, config file vs --record

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
        if info.get("outputs"):
            parts.append("sending to " + ", ".join(info["outputs"]))  # credentials masked
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
@dataclass(frozen=True)
class ViewOptions:
    endpoint: str = option(DEFAULT_ENDPOINT, "the publisher", positional=True, metavar="ENDPOINT")
    http: str | None = option(
        "127.0.0.1:8080", "serve the viewer page here (port 0: any; 'none': no page)",
        metavar="HOST:PORT", parse=endpoint_or_none,
    )  # fmt: skip
    record: str | None = option(
        None, "record every received frame", metavar="OUT.mp4", role="output"
    )
    overwrite: bool = option(False, "replace an existing --record")
    curve_keys: str | None = option(
        None, "keys for an encrypted stream", metavar="DIR", role="input"
    )
    seconds: float | None = option(None, "stop after S seconds", metavar="S", check=positive)
    frames: int | None = option(None, "stop after N frames", metavar="N")
    timeout_s: float | None = option(
        None, "end with an error when no frame arrives for S seconds (default: keep waiting)",
        metavar="S",
    )  # fmt: skip
    allow_remote_http: bool = option(False, "serve the page beyond loopback")
    stream: str | None = option(
        None, "one stream of a `serve` (default: a grid of all)", metavar="NAME"
    )
    hls: tuple[str, ...] = option(
        (), "also serve an HLS output's folder at /hls/NAME/ (a player; repeat)",
        metavar="[NAME=]DIR", repeat=True, role="declared",
    )  # fmt: skip
    config_file: str | None = option(None, cli=False, role="input")

    def io_paths(self) -> tuple[list[str], list[str]]:
        """The HLS folders the page serves (read): ``[NAME=]DIR``."""
        return [entry.partition("=")[2] or entry for entry in self.hls], []


def run_view_command(args: ViewOptions) -> int:
    from streamer.zeromq.viewer import ViewerConfig, run_viewer

    config = ViewerConfig(
        endpoint=args.endpoint, http=args.http, record=args.record, overwrite=args.overwrite,
        curve_keys_dir=args.curve_keys, seconds=args.seconds, frames=args.frames,
        receive_timeout_s=args.timeout_s, allow_remote_http=args.allow_remote_http,
        stream=args.stream, hls=args.hls,
    )  # fmt: skip
    guard_declared(args)  # --record never onto the keys or the config file

    def announce(info: dict[str, Any]) -> None:
        if info["url"]:
            url = info["url"]
            print(
                f"stylestream view: open {url} in a browser (OBS browser source: {url}source, "
                f"a serve stream: {url}source/NAME)",
                file=sys.stderr, flush=True,
            )  # fmt: skip

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


# -- keys --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeysGenerateOptions:
    directory: str = option(help="where the keys go", positional=True, metavar="DIR", role="output")
    overwrite: bool = option(False, "replace existing keys")


def run_keys_generate(args: KeysGenerateOptions) -> int:
    from streamer.zeromq.curve import generate_keys

    guard_declared(args)
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
@dataclass(frozen=True)
class BenchLiveOptions:
    source: str | None = option(
        None, "a live source (default: a 30 fps lavfi test pattern at --size, paced in real "
        "time)", metavar="SRC", role="input",
    )  # fmt: skip
    size: tuple[int, int] = option(
        (360, 640), "frame size", metavar="WxH", parse=wh, format=format_wh
    )
    fps: float = option(30.0, "rate of the test pattern", check=positive)
    seconds: float = option(20.0, "length of the run", check=positive)
    encoding: Literal["jpeg", "rgb24"] = option("jpeg", "payload of published frames")
    model: SpeedModel = option(SpeedModel(), flatten=True)
    json: str | None = option(None, "also write the numbers as JSON", metavar="FILE", role="output")
    config_file: str | None = option(None, cli=False, role="input")


def run_bench_live_command(args: BenchLiveOptions) -> int:
    from benchmarks.live_latency import BenchLiveConfig, run_bench_live

    guard_declared(args)  # --json never onto an input
    config = BenchLiveConfig(
        source=args.source, size=args.size, fps=args.fps, seconds=args.seconds,
        encoding=args.encoding, stylizer=args.model.spec(),
    )  # fmt: skip
    report = run_bench_live(config, print_line=print)
    if args.json:
        write_json_report(args.json, report)
    return 0
