"""Standard outputs for a stylized stream: RTMP(S), RTSP publish, SRT, HLS, NDI, virtual webcam.

- :mod:`~streamer.outputs.spec`: ``parse_output(url) -> OutputSpec`` (validated, credentials
  redacted in every message).
- :mod:`~streamer.outputs.base`: :class:`Output`, a non-blocking, self-healing
  :class:`~streamer.frames.FrameSink` (own thread, newest-frame-wins queue, reconnect with
  backoff, state and counters).
- :mod:`~streamer.outputs.av_connection`: low-latency H.264 into a PyAV container;
  :mod:`~streamer.outputs.audio_track` its AAC track (the source's audio or silence);
  :mod:`~streamer.outputs.encoder_options` `--output-option KEY=VALUE`.
- :mod:`~streamer.outputs.network` (RTMP, RTSP, SRT, HLS), :mod:`~streamer.outputs.devices`
  (NDI, virtual camera).
- :mod:`~streamer.outputs.fanout`: :func:`build_output` and :class:`OutputSet` (one stream to
  many outputs).
- :mod:`~streamer.outputs.pages`: the OBS browser-source page and the HLS player page.
"""

from __future__ import annotations

from streamer.outputs.av_connection import EncoderSettings
from streamer.outputs.base import Output, OutputOptions, OutputState, OutputStatus
from streamer.outputs.fanout import OutputSet, build_output
from streamer.outputs.spec import (
    OutputSpec,
    OutputUrlError,
    parse_output,
    parse_outputs,
    redact,
)

__all__ = [
    "EncoderSettings",
    "Output",
    "OutputOptions",
    "OutputSet",
    "OutputSpec",
    "OutputState",
    "OutputStatus",
    "OutputUrlError",
    "build_output",
    "parse_output",
    "parse_outputs",
    "redact",
]
