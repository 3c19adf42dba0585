"""A socket server on 127.0.0.1 that never finishes an answer, for testing deadlines.

Kept free of pytest so that the benchmarks can use it too.
"""

from __future__ import annotations

import socket
import threading


class StallingServer:
    """Accepts connections on 127.0.0.1 and never completes an HTTP answer.

    ``trickle_interval_s=None`` says nothing at all. A number sends a status line, then one byte
    every ``trickle_interval_s`` forever: each byte resets a per-read socket timeout, so only a
    deadline for the whole exchange ends it. ``read_request=True`` reads the request first, as a
    gateway receiving a push does. ``connections`` counts the connections accepted.
    """

    def __init__(self, trickle_interval_s: float | None = 0.05, read_request: bool = False) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._trickle_interval_s = trickle_interval_s
        self._read_request = read_request
        self._closed = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        interval_s = self._trickle_interval_s
        with connection:
            try:
                if self._read_request:
                    connection.recv(65536)
                if interval_s is None:
                    self._closed.wait()
                    return
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self._closed.wait(interval_s):
                    connection.sendall(b"X")
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
