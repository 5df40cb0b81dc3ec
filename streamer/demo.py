"""A short clip made from a bundled photo: a slow pan and zoom with a sine-tone audio track.

Used by ``stylestream demo`` (so it runs offline on a fresh install) and by ``bench render``.
The motion is exactly known (a crop window moving linearly over the photo), and the tone makes
the copied audio track audible in the result.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from adaattn_video.assets import DEFAULT_CONTENT
from streamer.sources.images import read_rgb


def pan_zoom_frames(
    photo: np.ndarray, size: tuple[int, int], frames: int, zoom: float = 1.35
) -> list[np.ndarray]:
    """``frames`` (H, W, 3) uint8 views of ``photo``: the crop window shrinks by ``zoom`` and
    slides left to right; ``size`` = (height, width) of each view."""
    height, width = size
    ph, pw = photo.shape[:2]
    aspect = width / height
    full_w = min(pw, ph * aspect)
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        crop_w = full_w / (1 + (zoom - 1) * t)
        crop_h = crop_w / aspect
        x0 = (pw - crop_w) * t
        y0 = (ph - crop_h) * (0.5 - 0.2 * np.sin(np.pi * t))
        # affine map output pixel -> photo pixel (sub-pixel exact, no crop rounding jitter)
        sx, sy = crop_w / width, crop_h / height
        matrix = np.array([[sx, 0, x0], [0, sy, y0]], dtype=np.float64)
        view = cv2.warpAffine(
            photo,
            matrix,
            (width, height),
            flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        out.append(view)
    return out


def encode_tone(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: int,
    tone_hz: float = 440.0,
    amplitude: float = 0.25,
) -> None:
    """Encode and mux ``samples`` of a mono sine tone (faded in and out over 50 ms, so no
    clicks) into ``stream``, then flush its encoder."""
    sample_rate = stream.rate
    t = np.arange(samples) / sample_rate
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05) if samples else t
    wave = (amplitude * envelope * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(
            wave[None, start : start + 1024], format="fltp", layout="mono"
        )
        chunk.sample_rate, chunk.pts = sample_rate, start
        chunk.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(chunk):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_demo_clip(
    path: str | Path,
    *,
    size: tuple[int, int] = (180, 320),
    fps: int = 24,
    seconds: float = 3.0,
    photo: str | Path = DEFAULT_CONTENT,
    tone_hz: float = 440.0,
    audio: bool = True,
) -> Path:
    """Write a pan/zoom clip of ``photo`` (H.264 + AAC tone) to ``path``; returns the path.

    ``size`` = (height, width), both even (yuv420p).
    """
    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"demo clip sides must be even, got {width}x{height}")
    frames = max(1, round(seconds * fps))
    views = pan_zoom_frames(read_rgb(Path(photo)), size, frames)
    path = Path(path)
    sample_rate = 48000
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "fast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for i, view in enumerate(views):
            frame = av.VideoFrame.from_ndarray(view, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            encode_tone(container, sound, round(frames / fps * sample_rate), tone_hz)
    return path
