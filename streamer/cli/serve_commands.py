"""``stylestream serve`` (many streams, one model) and ``bench serve``; the serve actions of
``stylestream control`` are in :mod:`streamer.cli.control_commands`."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Any, Literal

from adaattn_video.errors import StylestreamError
from configkit.checks import at_least, positive
from configkit.convert import option
from streamer.cli.reports import write_json_report
from streamer.cli.values import format_wh, wh
from streamer.guard import guard_declared
from streamer.serve.config import ServeConfig


class ServeUsageError(StylestreamError, ValueError):
    """A serve command-line value that cannot be used."""


# -- serve ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServeOptions:
    """``serve``: the server (:class:`~streamer.serve.config.ServeConfig`; its ``streams:``
    list is YAML only) and ``--stream NAME=SOURCE`` for the common case."""

    serve: ServeConfig = option(flatten=True)
    stream: tuple[str, ...] = option(
        (), "a stream (repeat for more), styled with --style/--alpha/--size; the YAML's "
        "'streams:' is the full form (per-stream style, alpha, size, record, source options)",
        metavar="NAME=SOURCE", repeat=True,
    )  # fmt: skip
    config_file: str | None = option(None, cli=False, role="input")


def with_flag_streams(data: dict[str, Any]) -> dict[str, Any]:
    """``serve``'s ``prepare`` step: ``--stream NAME=SOURCE`` entries join the YAML's
    ``streams:`` (style etc.: the server's)."""
    flags = data.pop("stream", ())
    flags = [flags] if isinstance(flags, str) else list(flags or ())
    entries = []
    for text in flags:
        name, sep, source = str(text).partition("=")
        if not sep or not source:
            raise ServeUsageError(f"--stream: expected NAME=SOURCE, got {text!r}")
        entries.append({"name": name, "source": source})
    if entries:
        streams = data.get("streams") or []
        data = {**data, "streams": [*streams, *entries]}
    return data


def run_serve_command(args: ServeOptions) -> int:
    from streamer.serve.server import run_serve

    config = args.serve
    guard_declared(args)  # every stream's record vs every source, style, region, key, config

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


# -- bench serve -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchServeOptions:
    streams: tuple[int, ...] = option((1, 2, 4), "stream counts to compare", metavar="N",
                                      check=at_least(1))  # fmt: skip
    size: tuple[int, int] = option(
        (96, 160), "frame size", metavar="WxH", parse=wh, format=format_wh
    )
    fps: float = option(15.0, "rate of each test source", check=positive)
    seconds: float = option(20.0, "length of each run", check=positive)
    weights: str | None = option(None, "default: random weights", metavar="W", role="input")
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = option("auto", "model precision")
    threads: int | None = option(
        None, "torch threads per process (default: cores / processes, at least 1)",
        metavar="N", check=positive,
    )  # fmt: skip
    json: str | None = option(None, "also write the numbers as JSON", metavar="FILE", role="output")
    config_file: str | None = option(None, cli=False, role="input")


def run_bench_serve_command(args: BenchServeOptions) -> int:
    guard_declared(args)  # --json never onto --weights
    from benchmarks.serve_scaling import BenchServeConfig, run_bench_serve

    config = BenchServeConfig(
        streams=args.streams,
        size=args.size,
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
