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
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from labkit.errors import ServerError
from labkit.ports import bind_first, moved_note

log = logging.getLogger("labkit.sandbox")
http_log = logging.getLogger("labkit.sandbox.http")


class QuietRequestHandler(WSGIRequestHandler):
    """No access log on stderr: in a notebook every webhook would print a line under the running cell."""

    def log_request(self, *args, **kwargs) -> None:
        pass

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            log.warning(message.rstrip(), *args)


class QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive, TCP_NODELAY and no per-request log lines.

    Why not werkzeug's own `run_wsgi`: it closes every connection, so each SDK call paid a new TLS
    handshake plus loading the whole CA bundle on the client (~60 ms per call with the system bundle,
    measured), and its responses met Nagle's algorithm. Here the request body is read completely
    before the app runs (so the next request on the connection is never mis-read), the response is
    sent with a Content-Length, and the connection stays open until the client closes it, it is idle
    for `timeout` seconds, or the sandbox stops (which shuts tracked connections down).
    """

    timeout = 15  # seconds an idle keep-alive connection is kept

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.__dict__.setdefault("labkit_connections", set()).add(self.connection)

    def finish(self) -> None:
        tracked = getattr(self.server, "labkit_connections", None)
        if tracked is not None:
            tracked.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        try:
            if environ.get("wsgi.input_terminated"):  # chunked upload: werkzeug de-chunks it
                body = environ["wsgi.input"].read()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        except (OSError, ValueError):
            self.close_connection = True
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        state: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("early", []).append(data)

        result = self.server.app(environ, start_response)
        if environ.get("labkit.socket_taken"):  # a WebSocket (control/phone_audio.py) had the socket: it is over
            getattr(result, "close", lambda: None)()
            self.close_connection = True
            return
        try:
            payload = b"".join([*state.get("early", []), *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        code, _, reason = state["status"].partition(" ")
        self.send_response(int(code), reason)
        for key, value in state["headers"]:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        if int(code) not in (204, 304) and not 100 <= int(code) < 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and int(code) not in (204, 304):
            self.wfile.write(payload)
        self.wfile.flush()

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        if type == "error":
            http_log.debug(message, *args)


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
            server = make_server(self.host, port, self.app, threaded=True, ssl_context=self.ssl_context,
                                 request_handler=self.request_handler)
        if isinstance(server.socket, ssl.SSLSocket):
            # werkzeug wraps the listening socket, so each TLS handshake ran inside accept(), on the one
            # thread that accepts: a client that connected and sent nothing (a port probe, a client with the
            # wrong scheme) held every other client off (measured: a plain TCP connect left an HTTPS
            # request unanswered for 5 s, until it timed out). Now the handshake happens on the first read,
            # in the connection's own thread, under its timeout.
            server.socket.do_handshake_on_connect = False
        return server

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
