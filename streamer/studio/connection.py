"""One browser connection of the studio: a WebRTC peer connection whose incoming camera track
feeds a push-fed stream of the serve engine, and whose outgoing track returns the stylized
frames.

::

    browser camera --WebRTC--> [asyncio: recv, crop+resize] --push--> PushSource (newest 1)
        --> engine: reader -> scheduler (batched with every other connection) -> writer
        --> ConnectionOutput.write (writer thread): recording, marker stamp
        --call_soon_threadsafe--> StylizedTrack (newest 1) --WebRTC--> browser <video>

Both hand-overs keep only the newest frame, so a slow client or a slow model drops frames
(counted) and never builds latency. Closing (the page's beacon, the peer connection failing or
closing, the server stopping) removes the stream, finalizes a recording and frees everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamer.frames import Frame, FrameSink
from streamer.serve.config import StreamSpec
from streamer.serve.push import PushSource
from streamer.serve.server import StreamServer
from streamer.studio.markers import draw_marker, fits, read_marker
from streamer.temporal.options import TemporalOptions

log = logging.getLogger(__name__)

VIDEO_CLOCK = Fraction(1, 90_000)


def fit_frame(frame: Any, size: tuple[int, int]) -> np.ndarray:
    """A decoded ``av.VideoFrame`` -> (H, W, 3) uint8 RGB at ``size`` (height, width): scaled
    to cover, then centre-cropped (a 4:3 camera in a 16:9 studio is cropped, not squashed)."""
    height, width = size
    scale = max(width / frame.width, height / frame.height)
    scaled_w = max(width, round(frame.width * scale))
    scaled_h = max(height, round(frame.height * scale))
    image = frame.to_ndarray(width=scaled_w, height=scaled_h, format="rgb24")
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def _aiortc_track_base() -> type:
    from aiortc import MediaStreamTrack

    return MediaStreamTrack


class ConnectionStats:
    """What the page's overlay shows (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.sent = 0
        self.dropped_send = 0  # stylized frames replaced before the encoder took them
        self.style_id: str | None = None  # of the last stylized frame
        self.marker_latencies_ms: deque[float] = deque(maxlen=4096)
        self._sent_times: deque[float] = deque(maxlen=256)
        self._server_ms: deque[float] = deque(maxlen=64)

    def stylized(self, style_id: str | None, server_ms: float) -> None:
        with self._lock:
            self.style_id = style_id
            self._server_ms.append(server_ms)

    def sent_one(self) -> None:
        with self._lock:
            self.sent += 1
            self._sent_times.append(time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._sent_times if now - t <= 2.0]
            server = sorted(self._server_ms)
        return {
            "received": self.received,
            "sent": self.sent,
            "dropped_send": self.dropped_send,
            "fps_sent": round(len(recent) / 2.0, 2),
            "server_ms": round(server[len(server) // 2], 1) if server else None,
            "style_id": self.style_id,
        }


class ConnectionOutput(FrameSink):
    """The engine's extra sink for one connection (called by the stream's writer thread)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def write(self, frame: Frame) -> None:
        c = self.connection
        image = frame.image
        with c.markers_lock:
            marker = c.markers.pop(frame.index, None)
        if marker is not None and fits(image.shape[1], image.shape[0]):
            image = draw_marker(image.copy(), marker)
        server_ms = 1000.0 * (time.time() - frame.capture_time_s)
        c.stats.stylized(frame.style_id, server_ms)
        if marker is not None:
            c.stats.marker_latencies_ms.append(server_ms)
        c.record_frame(frame)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            c.loop.call_soon_threadsafe(c.track.offer, image)

    def close(self) -> None:
        """Nothing to finalize: the connection closes its track and recording itself."""


class Connection:
    """A browser's peer connection, its engine stream and its recording."""

    def __init__(
        self,
        connection_id: str,
        engine: StreamServer,
        *,
        style_path: Path,
        alpha: float,
        size: tuple[int, int],
        recordings_dir: Path,
        stamp_markers: bool = False,
        ice_servers: list[Any] | None = None,
        motion: TemporalOptions | None = None,
    ) -> None:
        """``ice_servers``: aiortc ``RTCIceServer`` objects; None or [] = none at all (not
        aiortc's default public STUN server)."""
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.id = connection_id
        self.engine = engine
        self.size = size
        self.loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers or [])))
        self.source = PushSource(capacity=1)
        self.track = StylizedTrack(self)
        self.stats = ConnectionStats()
        self.markers: dict[int, int] = {}  # frame index -> marker read from the browser's frame
        self.markers_lock = threading.Lock()
        self.stamp_markers = stamp_markers
        self.recordings_dir = recordings_dir
        self._record_lock = threading.Lock()
        self._recorder: Any = None
        self._record_first_pts: int | None = None
        self.record_path: Path | None = None
        self.recordings: list[Path] = []
        self.record_error: str | None = None
        self.closed = asyncio.Event()
        self._closing = False
        self._consumer: asyncio.Task[None] | None = None
        self.spec = StreamSpec(
            name=connection_id,
            source=f"webrtc:{connection_id}",
            styles=(str(style_path),),
            alpha=alpha,
            size=size,
            motion=motion or TemporalOptions(),
        )
        self.runtime = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind != "video" or self._consumer is not None:
                return
            self.pc.addTrack(self.track)
            self._consumer = asyncio.ensure_future(self._consume(track))

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("connection %s: %s", self.id, self.pc.connectionState)
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

    async def answer(self, sdp: str, kind: str) -> dict[str, str]:
        """Start the engine stream and answer the browser's offer."""
        from aiortc import RTCSessionDescription

        self.runtime = await self.loop.run_in_executor(
            None,
            lambda: self.engine.add_stream(
                self.spec, source=self.source, outputs=(ConnectionOutput(self),)
            ),
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if self._consumer is None:
            raise ValueError("the offer has no video track: the page must send its camera")
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            self.stats.received += 1
            marker = None
            if self.stamp_markers:
                marker = read_marker(frame.to_ndarray(format="rgb24"))
            image = fit_frame(frame, self.size)
            pushed = self.source.push(image)
            if marker is not None:
                with self.markers_lock:
                    self.markers[pushed.index] = marker
                    if len(self.markers) > 64:  # frames dropped before stylizing keep theirs
                        for index in sorted(self.markers)[:-32]:
                            del self.markers[index]
        await self.close()

    # -- recording (the writer thread writes; the loop starts/stops) -------------------------
    def record_frame(self, frame: Frame) -> None:
        with self._record_lock:
            if self._recorder is None:
                return
            if self._record_first_pts is None:
                self._record_first_pts = frame.pts or 0
            try:
                self._recorder.write(replace(frame, pts=(frame.pts or 0) - self._record_first_pts))
            except Exception as err:  # a full disk ends the recording, not the stream
                log.error("connection %s: recording stopped: %s", self.id, err)
                self.record_error = str(err)
                recorder, self._recorder, self.record_path = self._recorder, None, None
                with contextlib.suppress(Exception):
                    recorder.close()

    def start_recording(self) -> Path:
        from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

        with self._record_lock:
            if self._recorder is not None:
                return self.record_path  # type: ignore[return-value]
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            path = self.recordings_dir / f"{self.id}-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
            self._recorder = Mp4Sink(Mp4SinkConfig(path))
            self._record_first_pts = None
            self.record_path = path
            return path

    def stop_recording(self) -> dict[str, Any] | None:
        with self._record_lock:
            recorder, self._recorder = self._recorder, None
            path, self.record_path = self.record_path, None
        if recorder is None or path is None:
            return None
        frames = recorder.frames_written
        recorder.close()  # a recording without frames removes its empty file
        if frames:
            self.recordings.append(path)
        return {"path": str(path), "frames": frames, "saved": bool(frames)}

    # -- state ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        stream = self.runtime.status() if self.runtime is not None else {}
        return {
            "id": self.id,
            "state": self.pc.connectionState,
            "style_id": stream.get("style_id"),
            "alpha": stream.get("alpha"),
            "fps_in": stream.get("fps_in"),
            "fps_out": stream.get("fps_out"),
            "latency_p50_ms": stream.get("latency_p50_ms"),
            "dropped": int(stream.get("dropped", 0)) + self.stats.dropped_send,
            "recording": None if self.record_path is None else self.record_path.name,
            "record_error": self.record_error,
            "temporal": stream.get("temporal"),
            **{f"link_{k}": v for k, v in self.stats.snapshot().items()},
        }

    async def close(self) -> None:
        """Free everything (idempotent): the peer connection, the engine stream, the recording."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        try:
            self.source.close()
            if self._consumer is not None and self._consumer is not asyncio.current_task():
                self._consumer.cancel()
            with contextlib.suppress(Exception):
                await self.pc.close()
            if self.runtime is not None:
                with contextlib.suppress(Exception):
                    await self.loop.run_in_executor(None, self.engine.remove_stream, self.id)
            await self.loop.run_in_executor(None, self.stop_recording)
            log.info("connection %s closed", self.id)
        finally:
            self.closed.set()


class StylizedTrack(_aiortc_track_base()):  # type: ignore[misc]
    """The outgoing video: the newest stylized picture, stamped with the time it is sent.

    ``offer`` (loop thread) replaces a picture the encoder has not taken yet (counted as a
    drop), so a client or an encoder slower than the model never sees old frames."""

    kind = "video"

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=1)
        self._start: float | None = None
        self._last_pts = -1

    def offer(self, image: np.ndarray) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.connection.stats.dropped_send += 1
        self._queue.put_nowait(image)

    async def recv(self) -> Any:
        import av

        image = await self._queue.get()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        now = time.monotonic()
        if self._start is None:
            self._start = now
        pts = max(self._last_pts + 1, int((now - self._start) * 90_000))
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_CLOCK
        self.connection.stats.sent_one()
        return frame
