#!/usr/bin/python3
"""A real RTSP server in RECORD mode on loopback (GStreamer's RTSP server, system python3-gi).

A publisher (ANNOUNCE/RECORD) to ``rtsp://127.0.0.1:PORT/record`` has its H.264 depayloaded and
muxed into an MPEG-TS file::

    /usr/bin/python3 tests/helpers/rtsp_record_server.py --port 0 --out FILE.ts

Prints ``PORT <n>`` once it listens; exits on SIGTERM/SIGINT or when stdin closes. Imported
from the tests, :class:`RtspRecordServer` runs it (same packages as ``rtsp_server.py``).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
APT_PACKAGES = "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-bad"


class RtspRecordServer:
    """``with RtspRecordServer(out) as s: s.url()``; the file is complete after ``stop()``."""

    def __init__(self, out: str | Path, *, port: int = 0) -> None:
        self.out = Path(out)
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/record"

    def start(self, timeout_s: float = 20.0) -> RtspRecordServer:
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise RuntimeError(f"{SYSTEM_PYTHON} not found; apt-get install {APT_PACKAGES}")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--out", str(self.out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = ""
        if select.select([self.proc.stdout], [], [], timeout_s)[0]:
            line = self.proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.stop()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(
                f"RTSP record server did not start ({line} {stderr.strip()[-300:]}); "
                f"apt-get install {APT_PACKAGES}"
            )
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __enter__(self) -> RtspRecordServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch(
        "( rtph264depay name=depay0 ! h264parse ! mpegtsmux "
        f'! filesink location="{args.out}" sync=false )'
    )
    factory.set_latency(50)
    server.get_mount_points().add_factory("/record", factory)
    from gst_loop import serve_until_stopped  # beside this script (run as a script)

    return serve_until_stopped(server, GLib, args.port)


if __name__ == "__main__":
    sys.exit(main())
