"""Debian's redis-server as a process of the tests: the session's shared one, or a test's own
that it may stop and start again on the same port (tests/conftest.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from servers.ports import free_port


class RedisProcess:
    """redis-server on 127.0.0.1, without persistence unless asked; or a Sentinel."""

    def __init__(self, workdir: Path, port: int | None = None, *, sentinel_for: int | None = None,
                 persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (tests/servers/install-system-packages installs it)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.sentinel_for = sentinel_for  # a Sentinel watching the primary on that port, as "mymaster"
        self.persistent = persistent  # an append-only file in workdir: what it holds outlives a restart

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [self.binary]
        if self.sentinel_for is not None:
            conf = self.workdir / "sentinel.conf"  # Sentinel rewrites its file: one of its own
            conf.write_text(f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_for} 1\n")
            command += [str(conf), "--sentinel"]
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Gone at once, as a crash or a restart would have it: its clients see refused connections."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
