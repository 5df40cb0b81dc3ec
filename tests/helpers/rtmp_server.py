"""A real RTMP server on loopback for tests: Debian's nginx with libnginx-mod-rtmp.

``with RtmpServer() as server:`` writes a config for a free port into a temporary folder and
runs ``nginx -c CONF -p DIR`` in the foreground (``daemon off``); ``server.url("key")`` is
``rtmp://127.0.0.1:PORT/live/key``. ``stop()`` kills it (publishers see the connection drop);
``start()`` starts it again on the same port. Raises RuntimeError naming the apt packages when
nginx or the module is missing (``apt-get install nginx libnginx-mod-rtmp``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

APT_PACKAGES = "nginx libnginx-mod-rtmp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rtmp_module() -> str | None:
    """The path of ngx_rtmp_module.so (from ``dpkg -L libnginx-mod-rtmp``), or None."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "libnginx-mod-rtmp"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return None
    return next(
        (line for line in listing.splitlines() if line.endswith("ngx_rtmp_module.so")), None
    )


def wait_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class RtmpServer:
    """nginx-rtmp in a subprocess; ``with RtmpServer() as s: s.url("key")``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rtmp-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, key: str = "test") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def _config(self, module: str) -> Path:
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"load_module {module};\ndaemon off;\nmaster_process off;\nerror_log {self.dir / 'error.log'};\n"
            f"pid {self.dir / 'nginx.pid'};\nevents {{}}\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; "
            "application live { live on; wait_key on; wait_video on; } } }\n"
        )
        return conf

    def start(self, timeout_s: float = 10.0) -> RtmpServer:
        module = rtmp_module()
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if module is None or nginx is None:
            raise RuntimeError(f"nginx-rtmp is not installed; apt-get install {APT_PACKAGES}")
        conf = self._config(module)
        self.proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_port(self.port, timeout_s):
            self.stop()
            log = self.dir / "error.log"
            raise RuntimeError(
                f"nginx-rtmp did not start: {log.read_text() if log.exists() else ''}"
            )
        return self

    def stop(self) -> None:
        """Kill the server at once (SIGKILL: connections drop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> RtmpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
