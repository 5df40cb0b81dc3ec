#!/usr/bin/python3
"""A real RTSP server on loopback for tests (Debian's GStreamer RTSP server).

Runs with the SYSTEM python (``/usr/bin/python3``: the ``gi`` bindings, package python3-gi,
are not in the project's virtual environment). Tests start it as a subprocess::

    /usr/bin/python3 tests/rtsp_server.py --port 0 [--file CLIP.mp4] [--live 64x64@15]

Mounts: ``/file`` streams an H.264 MP4 (``filesrc ! qtdemux ! h264parse ! rtph264pay``; clips
must be single-slice, i.e. written with ``thread_type="FRAME"``), ``/av`` the same MP4's video
and its AAC audio (``aacparse ! rtpmp4gpay``; the clip needs an audio track), ``/live`` streams an endless
moving test pattern (``videotestsrc is-live=true ! x264enc tune=zerolatency ! rtph264pay``).
Prints ``PORT <n>`` (the bound port; ``--port 0`` picks a free one) once it accepts
connections, and exits on SIGTERM/SIGINT or when its stdin is closed.

Needs: gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
gstreamer1.0-plugins-ugly.

Imported from the tests (any python), :class:`RtspServer` starts and stops that subprocess.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
APT_PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
    "gstreamer1.0-plugins-ugly"
)


class RtspServer:
    """The server script in a subprocess of the system python; ``with RtspServer(...) as s``.

    ``stop()`` kills it (an abrupt outage for connected clients); ``start()`` starts it again
    on the same port. Raises RuntimeError naming the apt packages when they are missing.
    """

    def __init__(self, clip: str | Path | None = None, *, port: int = 0, live: str = "64x64@15"):
        self.clip = None if clip is None else str(clip)
        self.port = port
        self.live = live
        self.proc: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self, timeout_s: float = 20.0) -> RtspServer:
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise RuntimeError(f"{SYSTEM_PYTHON} not found; apt-get install {APT_PACKAGES}")
        command = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--live", self.live]
        if self.clip:
            command += ["--file", self.clip]
        deadline = time.monotonic() + timeout_s
        while True:  # a just-killed server's port can take a moment to become free again
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            line = ""
            if select.select([self.proc.stdout], [], [], max(0.1, deadline - time.monotonic()))[0]:
                line = self.proc.stdout.readline().strip()
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                return self
            if line.startswith("MISSING"):
                self.stop()
                self._close_pipes()
                raise RuntimeError(
                    f"{line}; apt-get install --no-install-recommends {APT_PACKAGES}"
                )
            self.stop()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            self._close_pipes()
            if "No module named 'gi'" in stderr or "Namespace" in stderr:
                raise RuntimeError(
                    f"the GStreamer RTSP server is not installed ({stderr.strip().splitlines()[-1]}); "
                    f"apt-get install --no-install-recommends {APT_PACKAGES}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(f"RTSP server did not start: {line!r} {stderr.strip()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill the server at once (clients see the connection drop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _close_pipes(self) -> None:
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but no data flows."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
        self.stop()
        self._close_pipes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--file", help="MP4 (H.264) served at /file")
    parser.add_argument("--live", default="64x64@15", help="WxH@FPS of the /live test pattern")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    needed = {
        "videotestsrc": "gstreamer1.0-plugins-base",
        "x264enc": "gstreamer1.0-plugins-ugly",
        "rtph264pay": "gstreamer1.0-plugins-good",
        "qtdemux": "gstreamer1.0-plugins-good",
        "h264parse": "gstreamer1.0-plugins-bad",
        "aacparse": "gstreamer1.0-plugins-good",
        "rtpmp4gpay": "gstreamer1.0-plugins-good",
    }
    missing = [
        f"{name} ({package})"
        for name, package in needed.items()
        if not Gst.ElementFactory.find(name)
    ]
    if missing:
        print(f"MISSING GStreamer elements: {', '.join(missing)}", flush=True)
        return 1
    size, fps = args.live.split("@")
    width, height = size.split("x")

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    live = GstRtspServer.RTSPMediaFactory()
    live.set_launch(
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    live.set_shared(True)
    mounts.add_factory("/live", live)

    if args.file:
        clip = GstRtspServer.RTSPMediaFactory()
        clip.set_launch(
            f'( filesrc location="{args.file}" ! qtdemux ! h264parse '
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        mounts.add_factory("/file", clip)
        both = GstRtspServer.RTSPMediaFactory()
        both.set_launch(
            f'( filesrc location="{args.file}" ! qtdemux name=d '
            "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
            "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
        )
        mounts.add_factory("/av", both)

    from gst_loop import serve_until_stopped  # beside this script (run as a script)

    return serve_until_stopped(server, GLib, args.port, stdin_input=True)


if __name__ == "__main__":
    sys.exit(main())
