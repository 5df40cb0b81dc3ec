"""One stream's frames to several outputs: :func:`build_output` and :class:`OutputSet`.

Everything a user can get wrong is checked in :meth:`OutputSet.from_urls` before any output
starts: every URL is parsed (:func:`~streamer.outputs.spec.parse_output`), then every output's
``preflight`` runs (programs, optional extras, devices). Only then does a frame go anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streamer.frames import Frame, FrameSink, SourceInfo
from streamer.outputs.av_connection import EncoderSettings
from streamer.outputs.base import Output, OutputOptions, OutputStatus
from streamer.outputs.devices import NdiOutput, VirtualcamOutput
from streamer.outputs.network import HlsOutput, RtmpOutput, RtspOutput, SrtOutput
from streamer.outputs.spec import OutputSpec, OutputUrlError, parse_output, parse_outputs
from streamer.sources.audio_feed import AudioFeed

_CLASSES: dict[str, type[Output]] = {
    "rtmp": RtmpOutput,
    "rtmps": RtmpOutput,
    "rtsp": RtspOutput,
    "srt": SrtOutput,
    "hls": HlsOutput,
    "ndi": NdiOutput,
    "virtualcam": VirtualcamOutput,
}


def build_output(
    spec: OutputSpec | str,
    *,
    info: SourceInfo | None = None,
    options: OutputOptions | None = None,
    encoder: EncoderSettings | None = None,
    **settings: Any,
) -> Output:
    """The runtime output for ``spec`` (a URL is parsed first), preflighted.

    ``encoder`` applies to the H.264 outputs (RTMP, RTSP, SRT, HLS); ``settings`` are passed to
    the output class (``hls=HlsSettings(...)``, ``settings=VirtualcamSettings(...)``).

    Raises:
        OutputUrlError / StylestreamError: a bad URL, a missing program, extra or device.
    """
    if isinstance(spec, str):
        spec = parse_output(spec)
    cls = _CLASSES[spec.kind]
    kwargs: dict[str, Any] = dict(settings)
    if encoder is not None:
        if spec.kind in ("ndi", "virtualcam"):
            raise OutputUrlError(f"output {spec}: encoder settings apply to H.264 outputs only")
        kwargs["encoder"] = encoder
    output = cls(spec, options, info, **kwargs)
    output.preflight()
    return output


class OutputSet(FrameSink):
    """Fans each frame to every output; ``write`` never blocks (each output has its own queue
    and thread), so one slow or dead output delays none of the others."""

    def __init__(self, outputs: Sequence[Output]) -> None:
        self.outputs = list(outputs)
        self._listed: list[tuple[str, str, Callable[[], int]]] = []
        self._closed = False

    def list_also(self, output: str, kind: str, frames: Callable[[], int]) -> None:
        """Show a sink this set does not run (the ZeroMQ publisher, the MP4 recording) in
        :meth:`status_dicts` too: ``output`` its name (no secrets), ``frames()`` its count."""
        self._listed.append((output, kind, frames))

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str],
        *,
        info: SourceInfo | None = None,
        options: OutputOptions | None = None,
        audio: AudioFeed | None = None,
        encoder: EncoderSettings | None = None,
    ) -> OutputSet:
        """Parse every URL, then build (and preflight) every output; nothing starts before all
        passed. Duplicate URLs are refused (two publishers on one key fight each other).
        ``audio``: the source's audio (:meth:`set_audio`); ``encoder``: the H.264 settings of
        every RTMP/RTSP/SRT/HLS output (None: the defaults)."""
        specs = parse_outputs(list(urls))
        outputs = cls(
            [
                build_output(
                    spec,
                    info=info,
                    options=options,
                    encoder=None if spec.kind in ("ndi", "virtualcam") else encoder,
                )
                for spec in specs
            ]
        )
        if audio is not None:
            outputs.set_audio(audio)
        return outputs

    def set_audio(self, feed: AudioFeed) -> None:
        """Pass the source's audio to the outputs that carry audio (RTMP, SRT) and, when there
        is one, activate the feed (the source then demuxes its audio); call before the first
        frame."""
        takers = [o for o in self.outputs if getattr(o, "carries_audio", False)]
        for output in takers:
            output.audio = feed  # type: ignore[attr-defined]
        if takers:
            feed.activate()

    def set_info(self, info: SourceInfo) -> None:
        """The source's properties (frame rate: GOP length, declared rate), for a source
        opened after the outputs were built; call before the first frame."""
        for output in self.outputs:
            output.info = info

    def write(self, frame: Frame) -> None:
        for output in self.outputs:
            output.write(frame)

    def close(self) -> None:
        """Close every output at once (each flushes in its own thread; bounded by the outputs'
        ``close_timeout_s``), so SIGINT/SIGTERM handling is quick."""
        self._closed = True
        threads = [threading.Thread(target=o.close, daemon=True) for o in self.outputs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def status(self) -> list[OutputStatus]:
        """Every output's status, in order (for ``get-status`` / ``list-streams``)."""
        return [output.status() for output in self.outputs]

    def status_dicts(self) -> list[dict[str, Any]]:
        """:meth:`status` as JSON-ready dicts, after the sinks given to :meth:`list_also`
        (their drops, reconnects and latency are not tracked here: 0 / None)."""
        state = "closed" if self._closed else "running"
        listed = [
            OutputStatus(name, kind, state, frames(), 0, 0, None, None).as_dict()
            for name, kind, frames in self._listed
        ]
        return listed + [s.as_dict() for s in self.status()]


__all__ = ["OutputSet", "build_output"]
