"""The sandbox's HTTPS server: werkzeug's threaded server in a daemon thread that a notebook can stop cleanly.

The lab's own server moved to uvicorn (`labkit.server.runner`); the sandbox stays on werkzeug. It stands
in for Vonage's REST API for a few SDK clients on loopback, not for a public tunnel: it needs TLS with its
own certificate and its `QuietHandler`'s keep-alive accounting (which `Sandbox.stop` uses to end the SDK's
pooled connections); its handlers block on the platform model and on webhook round trips, which suits a
thread per request; and its load is a few requests per call, not hundreds of audio streams.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from labkit.errors import ServerError
from labkit.ports import bind_first, moved_note

log = logging.getLogger("labkit.sandbox")


class QuietRequestHandler(WSGIRequestHandler):
    """No access log on stderr: in a notebook every webhook would print a line under the running cell."""

    def log_request(self, *args, **kwargs) -> None:
        pass

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            log.warning(message.rstrip(), *args)


class ServerRunner:
    """werkzeug `make_server(threaded=True)` + `serve_forever` on a named daemon thread.

    `make_server` on a busy port prints and raises SystemExit rather than OSError; this class turns
    that into PortInUseError, or moves to the next free port when `fallback` allows and says so.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, fallback: int = 10,
                 ssl_context=None, name: str = "labkit-server",
                 on_stop: Callable[[], None] | None = None,
                 request_handler: type[WSGIRequestHandler] = QuietRequestHandler):
        self.app = app
        self.host = host
        self.requested_port = port
        self.fallback = fallback
        self.ssl_context = ssl_context
        self.name = name
        self.on_stop = on_stop
        self.request_handler = request_handler
        self.port: int | None = None
        self.note: str | None = None  # e.g. "port 8000 was busy, using 8001"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def server(self) -> BaseWSGIServer | None:
        return self._server

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _bind(self, port: int) -> BaseWSGIServer:
        # werkzeug prints the error to stderr and exits; keep the notebook output clean.
        with contextlib.redirect_stderr(io.StringIO()):
            return make_server(self.host, port, self.app, threaded=True, ssl_context=self.ssl_context,
                               request_handler=self.request_handler)

    def start(self) -> ServerRunner:
        if self.running:
            return self
        self._server = bind_first(self.host, self.requested_port, self.fallback, self._bind,
                                  errors=(SystemExit, OSError), what="the sandbox")
        self.port = self._server.server_port
        self.note = moved_note(self.requested_port, self.port, "the sandbox")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"{self.name}:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the listening socket and join the thread (idempotent)."""
        if self._server is not None and self.on_stop is not None:
            try:
                self.on_stop()  # open WebSockets / keep-alive connections: shutdown() leaves them open
            except Exception:  # noqa: BLE001
                log.exception("error while closing connections")
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise ServerError(f"the server thread {thread.name} did not stop within {timeout} s")
