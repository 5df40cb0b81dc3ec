"""The main loop both GStreamer RTSP server scripts end with (run by the system python3-gi):
listen, print ``PORT <n>``, and stop on SIGTERM/SIGINT or when stdin closes."""

from __future__ import annotations

import signal
import sys
from typing import Any


def serve_until_stopped(server: Any, glib: Any, port: int, *, stdin_input: bool = False) -> int:
    """Attach ``server`` (a GstRtspServer.RTSPServer) and run GLib's loop; the exit code.

    ``stdin_input``: also stop when stdin becomes readable (the pull server's parent writes
    to it), not only when it closes."""
    loop = glib.MainLoop()
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on port {port}", flush=True)
        return 1
    print(f"PORT {server.get_bound_port()}", flush=True)

    def stop(*_: object) -> bool:
        loop.quit()
        return False

    glib.unix_signal_add(glib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    glib.unix_signal_add(glib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    watch = glib.IO_HUP | glib.IO_ERR  # IOCondition flags: gi picks the overload by type
    if stdin_input:
        watch |= glib.IO_IN
    glib.io_add_watch(sys.stdin.fileno(), watch, stop)
    loop.run()
    return 0
