"""Outputs to local video systems: an NDI source (``ndi-python``) and a virtual webcam
(``pyvirtualcam``). Both are optional extras; a missing one is one line naming the install
command. Neither reconnects: a failure leaves the output ``failed`` (logged once).

NDI frames go out as RGBX (the NDI SDK converts for receivers), with the frame's source time as
the NDI timecode (100 ns units) and the stream's frame rate, so receivers pace like the source.
Virtual camera frames go out in the pixel format asked for (RGB, BGR, I420 or NV12; OBS and
browsers read any of them from v4l2loopback).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from configkit.errors import StylestreamError
from streamer.frames import Frame, SourceInfo
from streamer.outputs.base import Connection, Output, OutputOptions
from streamer.outputs.spec import OutputSpec

DEFAULT_FRAME_RATE = Fraction(30)
VIRTUALCAM_FORMATS = ("RGB", "BGR", "I420", "NV12")
MODPROBE = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1"


class MissingExtraError(StylestreamError, ImportError):
    """An optional package an output needs is not installed."""


class NoDeviceError(StylestreamError, FileNotFoundError):
    """The device an output writes to does not exist."""


def _require(module: str, extra: str, what: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{what} needs the optional package {module} ({err}); pip install -e '.[{extra}]'"
        ) from None


def ndi_module() -> Any:
    """The ``NDIlib`` module (ndi-python), initialised; one-line errors otherwise."""
    ndi = _require("NDIlib", "ndi", "an NDI output")
    if not ndi.initialize():
        raise StylestreamError("the NDI runtime cannot start on this CPU (NDIlib.initialize)")
    return ndi


class NdiOutput(Output):
    """An NDI source named ``spec.name`` on the local network."""

    def preflight(self) -> None:
        ndi_module()

    def _connect(self, frame: Frame) -> Connection:
        return _NdiConnection(ndi_module(), self.spec.name, self.info.frame_rate)


class _NdiConnection:
    def __init__(self, ndi: Any, name: str, frame_rate: Fraction | None) -> None:
        self.ndi = ndi
        settings = ndi.SendCreate()
        settings.ndi_name = name
        settings.clock_video = False  # frames are paced by the source, not by the SDK
        self.sender = ndi.send_create(settings)
        if self.sender is None:
            raise StylestreamError(f"NDI cannot create the source {name!r}")
        self.rate = (frame_rate or DEFAULT_FRAME_RATE).limit_denominator(1001)

    def send(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        rgbx = np.empty((h, w, 4), np.uint8)
        rgbx[..., :3] = frame.image
        rgbx[..., 3] = 255
        video = self.ndi.VideoFrameV2()
        video.data = rgbx
        video.FourCC = self.ndi.FOURCC_VIDEO_TYPE_RGBX
        video.frame_rate_N, video.frame_rate_D = self.rate.numerator, self.rate.denominator
        seconds = frame.time_s
        if seconds is not None:
            video.timecode = round(seconds * 10_000_000)
        self.ndi.send_send_video_v2(self.sender, video)

    def close(self) -> None:
        if self.sender is not None:
            self.ndi.send_destroy(self.sender)
            self.sender = None


def loopback_devices() -> list[str]:
    """v4l2loopback devices (``/dev/videoN`` whose driver name says loopback)."""
    found = []
    for name_file in sorted(glob.glob("/sys/devices/virtual/video4linux/video*/name")):
        device = "/dev/" + os.path.basename(os.path.dirname(name_file))
        if os.path.exists(device):
            found.append(device)
    return found


@dataclass(frozen=True)
class VirtualcamSettings:
    """``pixel_format``: one of :data:`VIRTUALCAM_FORMATS`; ``backend``: a pyvirtualcam backend
    name (None: the platform's; tests register their own with ``register_backend``)."""

    pixel_format: str = "RGB"
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.pixel_format not in VIRTUALCAM_FORMATS:
            raise ValueError(f"pixel_format must be one of {VIRTUALCAM_FORMATS}")


def convert_pixels(image: np.ndarray, pixel_format: str) -> np.ndarray:
    """(H, W, 3) RGB -> the array pyvirtualcam expects for ``pixel_format`` (even sides for
    I420/NV12: (H * 3 / 2, W) planes, BT.601 as v4l2 consumers assume)."""
    if pixel_format == "RGB":
        return image
    if pixel_format == "BGR":
        return np.ascontiguousarray(image[..., ::-1])
    import cv2

    i420 = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)
    if pixel_format == "I420":
        return i420
    h = image.shape[0]
    nv12 = i420.copy()
    u = i420[h : h + h // 4].reshape(-1)
    v = i420[h + h // 4 :].reshape(-1)
    nv12[h:].reshape(-1)[0::2] = u
    nv12[h:].reshape(-1)[1::2] = v
    return nv12


class VirtualcamOutput(Output):
    """A virtual webcam (v4l2loopback on Linux) showing the stylized frames."""

    def __init__(
        self,
        spec: OutputSpec,
        options: OutputOptions | None = None,
        info: SourceInfo | None = None,
        settings: VirtualcamSettings | None = None,
    ) -> None:
        super().__init__(spec, options, info)
        self.settings = settings or VirtualcamSettings()

    def preflight(self) -> None:
        _require("pyvirtualcam", "virtualcam", "a virtual camera output")
        if self.settings.backend is not None:
            return
        devices = loopback_devices()
        if (self.spec.name and self.spec.name not in devices) or not devices:
            wanted = self.spec.name or "a v4l2loopback device"
            raise NoDeviceError(f"no virtual camera ({wanted} not found); create one: {MODPROBE}")

    def _connect(self, frame: Frame) -> Connection:
        import pyvirtualcam

        h, w = frame.image.shape[:2]
        fmt = self.settings.pixel_format
        if fmt in ("I420", "NV12"):
            w, h = w - (w & 1), h - (h & 1)
        camera = pyvirtualcam.Camera(
            w,
            h,
            float(self.info.frame_rate or DEFAULT_FRAME_RATE),
            fmt=getattr(pyvirtualcam.PixelFormat, fmt),
            device=self.spec.name or None,
            backend=self.settings.backend,
        )
        return _CameraConnection(camera, fmt, (w, h))


@dataclass
class _CameraConnection:
    camera: Any
    pixel_format: str
    size: tuple[int, int]

    def send(self, frame: Frame) -> None:
        w, h = self.size
        image = frame.image[:h, :w]
        if image.shape[:2] != (h, w):
            import cv2

            image = cv2.resize(frame.image, (w, h), interpolation=cv2.INTER_AREA)
        self.camera.send(convert_pixels(np.ascontiguousarray(image), self.pixel_format))

    def close(self) -> None:
        self.camera.close()


__all__ = [
    "MissingExtraError",
    "NdiOutput",
    "NoDeviceError",
    "VirtualcamOutput",
    "VirtualcamSettings",
    "convert_pixels",
    "loopback_devices",
    "ndi_module",
]
