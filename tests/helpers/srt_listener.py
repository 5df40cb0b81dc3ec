"""A real SRT listener on loopback: Debian's ``srt-live-transmit`` (package srt-tools) writing
what a caller sends into a file (MPEG-TS for the outputs).

``with SrtListener(out) as s: s.url()`` is ``srt://127.0.0.1:PORT``; the file is complete
after ``stop()``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from helpers.rtmp_server import free_port


class SrtListener:
    def __init__(self, out: str | Path, port: int = 0) -> None:
        self.out = Path(out)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._file = None

    def url(self) -> str:
        return f"srt://127.0.0.1:{self.port}"

    def start(self) -> SrtListener:
        program = shutil.which("srt-live-transmit")
        if program is None:
            raise RuntimeError("srt-live-transmit not found; apt-get install srt-tools")
        self._file = self.out.open("wb")
        for _ in range(20):  # a caller retrying against the port can make a bind fail once
            self.proc = subprocess.Popen(
                [program, "-q", f"srt://127.0.0.1:{self.port}?mode=listener", "file://con"],
                stdout=self._file,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.3)  # bound to its UDP port
            if self.proc.poll() is None:
                return self
        raise RuntimeError(f"srt-live-transmit exited with {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> SrtListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
