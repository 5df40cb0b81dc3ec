"""``stylestream control ENDPOINT ACTION``: switch style, alpha or regions of a running ``live``
or ``serve``, and add, remove or list ``serve`` streams.

Every action is a command of the table with its own small config dataclass; each flattens
:class:`ControlTarget` (the endpoint, the reply timeout, the CURVE keys). Each action builds the
typed request object the server parses (:mod:`streamer.zeromq.control.protocol`, and
:mod:`streamer.serve.stream_requests` for serve's actions), so a request the server would refuse
(17 styles, NaN weights, ...) is refused here with the same message and never sent; paths are
made absolute (the server has its own cwd).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import check_alpha, check_style_weights, parse_size
from configkit.checks import positive
from configkit.convert import option
from configkit.yaml_loader import parse_overrides
from streamer.cli.values import items

if TYPE_CHECKING:
    from streamer.zeromq.control.client import Request


class ControlUsageError(StylestreamError, ValueError):
    """A control action's value that cannot be used (nothing is sent)."""


STREAM_HELP = "the stream of a `serve`"


@dataclass(frozen=True)
class ControlTarget:
    """Where the request goes; ``--timeout-s`` / ``--curve-keys`` may follow the action too."""

    endpoint: str = option(
        help="the live (or serve) run's control endpoint", positional=True, metavar="ENDPOINT"
    )
    timeout_s: float = option(
        30.0, "wait this long for the reply (encoding a style takes a moment)", metavar="S",
        check=positive,
    )  # fmt: skip
    curve_keys: str | None = option(
        None, "keys when the run uses CURVE", metavar="DIR", role="input"
    )

    def send(self, request: Request, stream: str | None = None) -> dict[str, Any]:
        """Send ``request`` (aimed at serve stream ``stream`` when given); the reply."""
        from streamer.zeromq.control import ForStream, send_request

        if stream is not None:
            request = ForStream(request, stream)
        reply = send_request(
            self.endpoint, request, timeout_s=self.timeout_s, curve_keys_dir=self.curve_keys
        )
        reply.pop("ok", None)
        return reply


def _existing(images: tuple[str, ...]) -> None:
    for image in images:
        if not Path(image).is_file():
            raise ControlUsageError(f"style image {image} does not exist")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


# -- set-style / set-alpha ---------------------------------------------------------------------
@dataclass(frozen=True)
class SetStyleOptions:
    target: ControlTarget = option(flatten=True)
    images: tuple[str, ...] = option(
        help="style image(s)", positional=True, metavar="IMAGE", role="input"
    )
    weights: tuple[float, ...] | None = option(None, "one weight per IMAGE", metavar="W")
    stream: str | None = option(None, STREAM_HELP, metavar="NAME")


def run_set_style(args: SetStyleOptions) -> int:
    from streamer.zeromq.control import SetStyle

    if not args.images:
        raise ControlUsageError("expected at least one style IMAGE")
    _existing(args.images)
    check_style_weights(args.weights, len(args.images))  # NaN, inf, < 0, all zero: refused here
    reply = args.target.send(SetStyle.from_paths(args.images, args.weights), args.stream)
    if args.stream is not None:
        print(f"{reply['stream']}: style set to {reply['style_id']}")
    else:
        print(f"style set to {reply['style_id']} (encoded in {reply['encode_ms']:.0f} ms)")
    return 0


@dataclass(frozen=True)
class SetAlphaOptions:
    target: ControlTarget = option(flatten=True)
    alpha: float = option(help="content strength 0..1", positional=True, metavar="ALPHA")
    stream: str | None = option(None, STREAM_HELP, metavar="NAME")


def run_set_alpha(args: SetAlphaOptions) -> int:
    from streamer.zeromq.control import SetAlpha

    reply = args.target.send(SetAlpha(check_alpha(args.alpha)), args.stream)
    where = f"{reply['stream']}: " if args.stream is not None else ""
    print(f"{where}alpha set to {reply['alpha']:g}")
    return 0


# -- regions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetRegionsOptions:
    target: ControlTarget = option(flatten=True)
    region: tuple[Any, ...] = option(
        (), "as `live --region`: a still mask picture or a chroma key (key=green|blue|#RRGGBB); "
        "repeat", metavar="style=IMG,mask=PNG[,invert=1]", parse=items, repeat=True,
        role="declared",
    )  # fmt: skip
    uncovered: Literal["style", "content"] | None = option(
        None, "positions covered by no region: the stream's style (default) or the content"
    )
    stream: str | None = option(None, STREAM_HELP, metavar="NAME")

    def io_paths(self) -> tuple[list[str], list[str]]:
        return region_paths(self.region), []


def region_paths(region: tuple[Any, ...]) -> list[str]:
    """The files ``--region`` entries read (styles, masks): declared inputs."""
    from streamer.regions.specs import parse_regions

    return [path for spec in parse_regions(list(region)) for path in spec.paths]


def _print_regions(reply: dict[str, Any]) -> None:
    where = f"{reply['stream']}: " if "stream" in reply else ""
    names = [r["style"] for r in reply["regions"]]
    if names:
        print(f"{where}regions set to {', '.join(Path(n).stem for n in names)} (style id "
              f"{reply['style_id']})")  # fmt: skip
    else:
        print(f"{where}regions cleared (style {reply['style_id']})")


def run_set_regions(args: SetRegionsOptions) -> int:
    from streamer.regions.specs import RegionPlan, parse_regions
    from streamer.zeromq.control import SetRegions

    if not args.region:
        raise ControlUsageError("expected at least one --region style=IMG,mask=PNG|key=COLOUR")
    plan = RegionPlan(parse_regions(list(args.region)), args.uncovered or "style")
    plan.check(sequences=False)  # a missing or empty mask: one line here, nothing sent
    _print_regions(
        args.target.send(SetRegions.from_specs(plan.regions, args.uncovered), args.stream)
    )
    return 0


@dataclass(frozen=True)
class ClearRegionsOptions:
    target: ControlTarget = option(flatten=True)
    stream: str | None = option(None, STREAM_HELP, metavar="NAME")


def run_clear_regions(args: ClearRegionsOptions) -> int:
    from streamer.zeromq.control import ClearRegions

    _print_regions(args.target.send(ClearRegions(), args.stream))
    return 0


# -- status and the serve actions --------------------------------------------------------------
@dataclass(frozen=True)
class TargetOnly:
    target: ControlTarget = option(flatten=True)


def run_status(args: TargetOnly) -> int:
    from streamer.zeromq.control import GetStatus

    print(json.dumps(args.target.send(GetStatus()), indent=2))
    return 0


def run_list_streams(args: TargetOnly) -> int:
    from streamer.serve.stream_requests import ListStreams

    print(json.dumps(args.target.send(ListStreams()), indent=2))
    return 0


@dataclass(frozen=True)
class RemoveStreamOptions:
    target: ControlTarget = option(flatten=True)
    name: str = option(help="the stream", positional=True, metavar="NAME")


def run_remove_stream(args: RemoveStreamOptions) -> int:
    from streamer.serve.stream_requests import RemoveStream

    reply = args.target.send(RemoveStream(args.name))
    print(f"stream {reply['removed']} removed ({reply['frames_out']} frames published)")
    return 0


@dataclass(frozen=True)
class AddStreamOptions:
    """A stream entry as in the YAML's ``streams:`` (checked by the server)."""

    target: ControlTarget = option(flatten=True)
    name: str = option(help="the stream's name", positional=True, metavar="NAME")
    source: str = option(
        help="rtsp://..., a file, lavfi:...", positional=True, metavar="SOURCE", role="input"
    )
    style: tuple[str, ...] = option(
        (), "style image (repeat)", metavar="IMAGE", repeat=True, role="input"
    )
    style_weights: tuple[float, ...] | None = option(None, "one weight per --style", metavar="W")
    alpha: float | None = option(None, "content strength 0..1")
    size: str | None = option(None, "stylize at N (longer side) or WxH", metavar="N|WxH")
    record: str | None = option(None, "also record the stream", metavar="OUT.mp4", role="output")
    output: tuple[str, ...] = option(
        (), "also send the stream to URL (repeat; as `live --output`: rtmp://, rtsp://, "
        "srt://, hls:DIR, ndi:NAME, virtualcam)", metavar="URL", repeat=True, role="none",
    )  # fmt: skip
    output_option: tuple[str, ...] = option(
        (), "H.264 setting of the stream's outputs (repeat; as `live --output-option`: codec, "
        "preset, tune, bitrate, crf, gop)", metavar="KEY=VALUE", repeat=True, role="none",
    )  # fmt: skip
    region: tuple[Any, ...] = option(
        (), "a region (as `live --region`: still masks and chroma keys; repeat)",
        metavar="style=IMG,mask=PNG|key=COLOUR", parse=items, repeat=True, role="declared",
    )  # fmt: skip
    uncovered: Literal["style", "content"] | None = option(None, "positions covered by no region")
    set: tuple[str, ...] = option(
        (), "any other stream key (YAML value), e.g. --set give_up_after_s=30",
        metavar="KEY=VALUE", repeat=True,
    )  # fmt: skip

    def io_paths(self) -> tuple[list[str], list[str]]:
        """What the server reads and writes for it (checked there, where the paths mean what
        they say: :meth:`streamer.serve.server.StreamServer.add_stream`)."""
        return region_paths(self.region), []

    def entry(self) -> dict[str, Any]:
        """The ``add-stream`` request's stream entry (paths made absolute)."""
        if not self.style:
            raise ControlUsageError("expected at least one --style IMAGE")
        _existing(self.style)
        entry: dict[str, Any] = {
            "name": self.name, "source": self.source, "style": [_absolute(s) for s in self.style],
        }  # fmt: skip
        if self.style_weights is not None:
            entry["style_weights"] = list(self.style_weights)
        if self.alpha is not None:
            entry["alpha"] = self.alpha
        if self.size is not None:
            try:
                parse_size(self.size)
            except ValueError as err:
                raise ControlUsageError(f"--size: {err}") from err
            entry["size"] = self.size
        if self.record is not None:
            entry["record"] = _absolute(self.record)
        if self.output:
            from streamer.outputs import parse_outputs

            specs = parse_outputs(self.output)  # a bad URL: one line here, nothing sent
            entry["output"] = [
                f"hls:{_absolute(s.url[4:])}" if s.kind == "hls" else s.url for s in specs
            ]
        if self.output_option:
            from streamer.outputs.encoder_options import parse_output_options

            # a bad key or value: one line here, nothing sent
            entry["output_option"] = list(parse_output_options(list(self.output_option)))
        if self.region:
            from streamer.regions.specs import RegionPlan, parse_regions

            plan = RegionPlan(parse_regions(list(self.region)), self.uncovered or "style")
            plan.check(sequences=False)  # a missing mask: one line here, nothing sent
            entry["region"] = [spec.absolute().as_dict() for spec in plan.regions]
        if self.uncovered is not None:
            entry["uncovered"] = self.uncovered
        entry.update(parse_overrides(list(self.set)))  # the one YAML value parser
        return entry


def run_add_stream(args: AddStreamOptions) -> int:
    from streamer.serve.stream_requests import AddStream

    reply = args.target.send(AddStream.from_json({"stream": args.entry()}))
    outputs = reply.get("outputs") or []
    print(
        f"stream {reply['added']} added (style {reply['style_id']})"
        + (f"; outputs: {', '.join(outputs)}" if outputs else "")
    )
    return 0
