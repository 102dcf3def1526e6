"""A test server that serves from a thread of its own until stopped (a context manager)."""

from __future__ import annotations

import threading
from http.server import HTTPServer
from typing import Self


class Background:
    _httpd: HTTPServer
    _thread: threading.Thread | None = None
    thread_name = "test-server"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
