"""One ASGI app on one port: `/socket` (the calls') and `/browser-audio` (a notebook page's live audio) as
native ASGI WebSockets, everything else the Flask app.

Flask runs on a2wsgi's thread pool. Before a request reaches it, the body is read here within the
body cap and read timeout (a 100 MB body is refused with 413 from its Content-Length, before any of it
is read), and each chunk of the response is sent within the send timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from a2wsgi import WSGIMiddleware

from labkit.server.browser_audio import PATH as BROWSER_AUDIO_PATH
from labkit.server.limits import BodyRefused, Limits, Refusals, SendTimeout, read_body, send_within


class LabAsgi:
    """The ASGI callable uvicorn serves. `close()` shuts a2wsgi's executor (it leaks threads otherwise)."""

    def __init__(self, wsgi_app, limits: Limits, refusals: Refusals, sockets: Any = None, workers: int = 16,
                 allowed_hosts: set[str] | None = None, browser_audio: Any = None):
        self.wsgi = WSGIMiddleware(wsgi_app, workers=workers)
        self.limits = limits
        self.refusals = refusals
        self.sockets = sockets  # labkit.server.sockets.SocketHub or None
        self.allowed_hosts = allowed_hosts  # the lab's live set: the tunnel's host is added after start
        self.browser_audio = browser_audio  # labkit.server.browser_audio.BrowserAudioHub or None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "websocket":
            if self.sockets is not None and scope["path"] == "/socket":
                await self.sockets.serve_asgi(scope, receive, send, self.limits, self.refusals, self.allowed_hosts)
            elif self.browser_audio is not None and scope["path"] == BROWSER_AUDIO_PATH:
                await self.browser_audio.serve(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":  # lifespan is off; nothing else exists
            return
        await self._http(scope, receive, send)

    async def _http(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        limits = self.limits
        declared, both = _framing(scope)
        if both:  # RFC 9112 6.3: chunked framing wins, and the server MUST close the connection after responding
            self.refusals.count("both-length-headers", f"{scope['method']} {scope['path'][:200]!r} had Content-Length "
                                "and Transfer-Encoding: answered by its chunked framing, then the connection closed "
                                "(RFC 9112 section 6.3)")
        try:
            if declared is not None and declared > limits.max_body_bytes:
                raise BodyRefused(413, "body-too-large", f"a {declared}-byte request body is over "
                                                         f"{limits.max_body_bytes} bytes (LABKIT_MAX_BODY_BYTES)")
            body = await read_body(receive, limits)
        except BodyRefused as refused:
            if refused.status:
                self.refusals.count(refused.kind, f"{refused.reason}: {scope['method']} {scope['path']}")
                await _plain(send, refused.status, f"Refused: {refused.reason}.\n", limits.send_timeout)
            return

        if declared is None and body is not None and _has(scope, b"transfer-encoding"):
            # The body is read whole, so the app gets it framed by its real length: Content-Length as
            # received (a smuggling attempt's) is dropped, as RFC 9112 6.3 tells an intermediary to do.
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k not in (b"content-length", b"transfer-encoding")]
                     + [(b"content-length", str(len(body)).encode())]}
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only http.disconnect is left

        cut = False
        started = False

        async def timed_send(message: dict[str, Any]) -> None:
            # After a cut, drop the rest quietly: a2wsgi's worker thread must run to its end, not block.
            nonlocal cut, started
            if cut:
                return
            if message["type"] == "http.response.start":
                started = True
                if both:  # uvicorn then closes the connection once the response is sent (h11 MUST_CLOSE)
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            try:
                await send_within(send, message, limits.send_timeout)
            except SendTimeout:
                cut = True
                self.refusals.count("slow-reader", f"a client stopped reading the response to {scope['path']}")

        try:
            await self.wsgi(scope, replay, timed_send)
        except Exception as exc:  # noqa: BLE001 - the adapter's own failures: counted, never a traceback
            self.refusals.count("adapter-error", f"{scope['method']} {scope['path'][:200]!r}: the WSGI adapter "
                                                 f"failed ({type(exc).__name__}: {str(exc)[:200]})")
            if not started and not cut:
                await _plain(send, 500, "The lab's server failed on this request.\n", limits.send_timeout)

    def close(self) -> None:
        self.wsgi.executor.shutdown(wait=False, cancel_futures=True)


def _has(scope: dict[str, Any], name: bytes) -> bool:
    return any(key == name for key, _ in scope.get("headers", ()))


def _framing(scope: dict[str, Any]) -> tuple[int | None, bool]:
    """(declared Content-Length, or None when absent, unreadable or overridden by Transfer-Encoding;
    whether the request carried both headers)."""
    length: int | None = None
    has_length = chunked = False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            has_length = True
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    both = has_length and chunked
    return (None if chunked else length), both


async def _plain(send: Callable, status: int, text: str, timeout: float) -> None:
    body = text.encode()
    try:
        await send_within(send, {"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]}, timeout)
        await send_within(send, {"type": "http.response.body", "body": body}, timeout)
    except (SendTimeout, OSError):
        pass
