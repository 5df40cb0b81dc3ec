"""Test media made on the spot with PyAV, and readers that look at what a file really holds.

No video file ships with the project or exists on the machine; every test writes the clip it
needs (a few dozen tiny frames) into ``tmp_path``. Shared by every test module: keep it general.

Writers:    :func:`write_clip` (H.264 + optional AAC sine, CFR or VFR, any size, any container),
            :func:`write_image_folder`, :func:`write_contrast_styles` (region tests).
Readers:    :func:`decoded_frames`, :func:`frame_times`, :func:`audio_packets`,
            :func:`count_decodable_frames` (tolerates a torn end, as after a crash).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamer.demo import encode_tone


def pattern_frame(index: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a smooth gradient with a bar that moves one step per frame, so every
    frame differs from its neighbours and compresses well."""
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = ((x + 7 * index) % 256).astype(np.uint8)
    image[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    image[..., 2] = (128 + 60 * np.sin(index / 3.0)) % 256
    bar = (3 * index) % width
    image[:, bar : bar + max(1, width // 16)] = 255
    return image


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`write_clip` wrote: frame pts in ``time_base`` units, the frames themselves
    (before compression) and the audio sample count."""

    path: Path
    pts: list[int]
    time_base: Fraction
    frames: list[np.ndarray]
    audio_samples: int

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def write_clip(
    path: str | Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (64, 64),
    fps: int = 24,
    audio: bool = True,
    vfr: bool = False,
    sample_rate: int = 48000,
    tone_hz: float = 440.0,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    container_options: dict[str, str] | None = None,
    bframes: int | None = None,
    gop: int | None = None,
) -> ClipInfo:
    """Write a test clip: ``size`` = (height, width) frames from :func:`pattern_frame`.

    ``vfr=True`` spaces frames irregularly (1, 2 or 3 ticks of 1/(fps*2) s, a fixed pattern), in
    a 1/(fps*2) time base. Audio is a mono AAC sine as long as the video. ``bframes`` sets
    libx264's B-frames (None: its default, B-frames on); ``gop`` its keyframe interval in frames
    (None: its default, 250). ``pix_fmt`` None: yuv420p, or yuv444p
    when a side is odd (yuv420p needs even sides).
    """
    path = Path(path)
    height, width = size
    time_base = Fraction(1, fps * 2) if vfr else Fraction(1, fps)
    steps = [1, 2, 3, 2] if vfr else [1]
    pts = [0]
    for i in range(1, frames):
        pts.append(pts[-1] + steps[i % len(steps)])
    images = [pattern_frame(i, height, width) for i in range(frames)]
    options = {} if bframes is None else {"bf": str(bframes)}
    if gop is not None:
        options["g"] = str(gop)
    duration_s = float((pts[-1] + steps[frames % len(steps)]) * time_base)
    samples = round(duration_s * sample_rate) if audio else 0
    with av.open(str(path), "w", options=container_options or {}) as container:
        video = container.add_stream(codec, rate=fps, options=options)
        if pix_fmt is None:
            pix_fmt = "yuv444p" if height % 2 or width % 2 else "yuv420p"
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = time_base
        if audio:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for image, p in zip(images, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio:
            encode_tone(container, sound, samples, tone_hz)
    return ClipInfo(path, pts, time_base, images, samples)


def write_image_folder(
    folder: str | Path,
    *,
    frames: int = 6,
    size: tuple[int, int] = (48, 64),
    name: str = "frame_{:03d}.png",
) -> list[np.ndarray]:
    """Write ``frames`` PNG files (lossless: tests can compare exactly); returns the images."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = [pattern_frame(i, *size) for i in range(frames)]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / name.format(i)), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return images


def decoded_frames(path: str | Path) -> list[av.VideoFrame]:
    """Every video frame of a file, in presentation order (raises on damage)."""
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def frame_times(path: str | Path) -> list[Fraction]:
    """Presentation time (seconds, exact) of every decoded video frame."""
    return [f.pts * Fraction(f.time_base) for f in decoded_frames(path)]


def frame_arrays(path: str | Path) -> list[np.ndarray]:
    return [f.to_ndarray(format="rgb24") for f in decoded_frames(path)]


def audio_packets(path: str | Path) -> list[tuple[int | None, bytes]]:
    """(pts, payload) of every audio packet of the first audio stream (empty list if none)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [
            (p.pts, bytes(p))
            for p in container.demux(container.streams.audio[0])
            if p.dts is not None and p.size
        ]


def count_decodable_frames(path: str | Path) -> int:
    """How many video frames decode before the first error (a crashed file ends torn)."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except av.FFmpegError:
        pass
    return count


def video_duration(path: str | Path) -> Fraction:
    """The video stream's duration as the container declares it (seconds, exact)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.duration * Fraction(stream.time_base)


def video_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def decodable_frame_times(path: str | Path) -> list[Fraction]:
    """Times of the video frames that decode before the first error (a torn file's end)."""
    times: list[Fraction] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                times.append(frame.pts * Fraction(frame.time_base))
    except av.FFmpegError:
        pass
    return times


def has_audio(path: str | Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)


def write_contrast_styles(folder: Path, mask_size: tuple[int, int] | None = None) -> dict[str, str]:
    """Two very different small style PNGs in ``folder``: ``warm`` (red with stripes) and
    ``cold`` (blue noise), so regions stylized with each are told apart at a glance; with
    ``mask_size`` (height, width) also ``left``, a mask whose left half is white."""
    rng = np.random.default_rng(1)
    warm = np.zeros((32, 32, 3), np.uint8)
    warm[..., 0] = 230
    warm[::4, :, 1] = 120
    cold = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
    cold[..., 2] += 160
    images = {"warm": warm, "cold": cold}
    if mask_size is not None:
        left = np.zeros(mask_size, np.uint8)
        left[:, : mask_size[1] // 2] = 255
        images["left"] = left
    paths = {}
    for name, array in images.items():
        Image.fromarray(array).save(folder / f"{name}.png")
        paths[name] = str(folder / f"{name}.png")
    return paths


# A small RTSP-friendly clip: 45 frames at 15 fps.
CLIP_FRAMES = 45
CLIP_FPS = 15


def write_rtsp_clip(path: Path, frames: int = CLIP_FRAMES, size: int = 64) -> list[np.ndarray]:
    """A small H.264 clip (a bar moving right, brightness rising), returned as decoded frames.

    Encoded with frame threading: default (slice) threading makes multi-slice pictures that
    arrive over RTSP as two half-updated frames (ENVIRONMENT.md)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_type = "FRAME"
        stream.options = {"g": "15"}
        for i in range(frames):
            image = np.full((size, size, 3), 40 + (4 * i) % 200, np.uint8)
            image[:, (3 * i) % size : (3 * i) % size + 6] = (250, 30, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
