"""Limits a server on a public tunnel needs, and the pieces of the uvicorn stack that enforce them.

Anyone who finds the tunnel's URL can talk to the lab, so every resource a peer can hold is bounded:
body and header size, time to send headers and body, WebSocket message size, idle/half-open sockets
(ping), concurrent connections, and the time one send may take. Refused requests are counted per kind
and reported one line at a time (`Refusals`), never one event each; so are the HTTP layer's own
complaints (`CountingLogger`), which uvicorn would otherwise print into the notebook once per request.

Each limit is a setting read from the environment (defaults in the README); tests pass small values.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from labkit.errors import ConfigError

#: The transport of the connection whose request (or WebSocket) is being handled: set around
#: `data_received`, so the ASGI task that uvicorn creates there inherits it. Lets the app cut a peer.
CURRENT_TRANSPORT: contextvars.ContextVar[asyncio.Transport | None] = contextvars.ContextVar(
    "labkit_transport", default=None)


@dataclass(frozen=True)
class Limits:
    """Every bound the lab's server applies. Environment names: LABKIT_ + the field name in capitals."""

    max_body_bytes: int = 64 * 1024  # webhooks are a few hundred bytes; 413 above this, before reading
    max_header_bytes: int = 16 * 1024  # request line + all headers; 431 above (a signed webhook's are < 2 KB)
    header_timeout: float = 10.0  # seconds for a client to send its request line and headers
    read_timeout: float = 10.0  # seconds for a whole request body (and between WebSocket messages' bytes)
    ws_max_message_bytes: int = 64 * 1024  # a 20 ms frame is 640-1920 bytes; text events are small
    ws_ping_interval: float = 15.0  # a ping every 15 s ...
    ws_ping_timeout: float = 15.0  # ... and no pong within 15 s closes it: a half-open peer goes within 30 s
    max_connections: int = 500  # concurrent TCP connections (webhooks + WebSockets); 503 above
    send_timeout: float = 2.0  # one send (a frame, a response chunk) may wait this long for a slow peer
    stop_timeout: float = 5.0  # lab.stop() returns within this, cutting whatever is still open
    refusal_window: float = 5.0  # refused requests are reported one line per kind per window

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Limits:
        """Defaults, replaced by LABKIT_<NAME> environment variables, replaced by `overrides`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"LABKIT_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"LABKIT_{f.name.upper()}={raw!r} is not a number: give a {kind.__name__}, "
                                  f"or unset it for the default ({getattr(cls, f.name)}).") from None
            if value <= 0:
                raise ConfigError(f"LABKIT_{f.name.upper()} must be more than 0, not {raw}.")
            values[f.name] = value
        values.update(overrides)
        return cls(**values)


def limits_for(env_file: str | os.PathLike | None) -> Limits:
    """The limits from `.env` (when there is one) overridden by the environment, like every setting."""
    values: dict[str, Any] = {}
    if env_file:
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return Limits.from_env(values)


class Refusals:
    """Refused requests, counted per kind and reported as one event line per kind per window.

    The first refusal of a kind is reported at once (so a user sees why their request failed); any more
    within `window` seconds are only counted, and reported as one line with the count when the window
    ends. 20,000 refused requests make a handful of events, not 20,000.
    """

    def __init__(self, add: Callable[[str, dict[str, Any]], Any], window: float = 5.0):
        self._add = add  # EventLog.add
        self.window = window
        self.totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, str, str]] = {}  # kind -> (start, pending, reason, source)
        self._timers: dict[str, threading.Timer] = {}

    def count(self, kind: str, reason: str, *, source: str = "lab", **extra: Any) -> None:
        """Record one refused request of `kind` (e.g. "unsigned", "bad-token"), explained by `reason`."""
        now = time.monotonic()
        report: dict[str, Any] | None = None
        with self._lock:
            self.totals[kind] = self.totals.get(kind, 0) + 1
            started, pending, _, _ = self._windows.get(kind, (0.0, 0, "", source))
            if now - started >= self.window:
                report = self._take(kind)  # the previous window's leftovers, if any
                self._windows[kind] = (now, 0, reason, source)
                first = {"status": "refused", "kind": kind, "count": 1, "reason": reason, **extra}
            else:
                self._windows[kind] = (started, pending + 1, reason, source)
                first = None
                if kind not in self._timers:
                    timer = threading.Timer(max(0.0, started + self.window - now), self._flush_kind, (kind,))
                    timer.daemon = True
                    timer.name = "labkit-refusals"
                    self._timers[kind] = timer
                    timer.start()
        if report is not None:
            self._add(report.pop("_source"), report)
        if first is not None:
            self._add(source, first)

    def _take(self, kind: str) -> dict[str, Any] | None:
        """The summary line for `kind`'s pending count, resetting it (lock held)."""
        timer = self._timers.pop(kind, None)
        if timer is not None:
            timer.cancel()
        started, pending, reason, source = self._windows.get(kind, (0.0, 0, "", "lab"))
        if not pending:
            return None
        self._windows[kind] = (started, 0, reason, source)
        return {"_source": source, "status": "refused", "kind": kind, "count": pending,
                "reason": f"{pending} more refused in {self.window:g} s; the last: {reason}"}

    def _flush_kind(self, kind: str) -> None:
        with self._lock:
            self._timers.pop(kind, None)
            report = self._take(kind)
        if report is not None:
            self._add(report.pop("_source"), report)

    def flush(self) -> None:
        """Report every pending count now (stop calls this, so nothing counted is lost)."""
        with self._lock:
            reports = [self._take(kind) for kind in list(self._windows)]
        for report in reports:
            if report is not None:
                self._add(report.pop("_source"), report)


class LabHttpProtocol(H11Protocol):
    """uvicorn's h11 protocol plus the limits uvicorn lacks: a header timeout and a connection cap.

    uvicorn cuts idle keep-alive connections but has no deadline for a request's headers, so a
    slowloris client could hold a connection forever; its `limit_concurrency` also lets WebSocket
    upgrades through. Settings come from `config.labkit_limits`; refusals go to `config.labkit_refusals`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn logs each malformed request ("Invalid HTTP request received.") and each exception in the
        # app, with a traceback, to "uvicorn.error": into the notebook. Here they are counted instead.
        self.logger = CountingLogger(self.config.labkit_refusals)  # type: ignore[attr-defined,assignment]
        self._head = b""  # the current request's bytes until its headers end (for max_header_bytes)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits: Limits = self.config.labkit_limits  # type: ignore[attr-defined]
        self._header_timer: asyncio.TimerHandle | None = None
        over = len(self.connections) >= limits.max_connections
        super().connection_made(transport)
        if over:
            self.config.labkit_refusals.count(  # type: ignore[attr-defined]
                "too-many-connections", f"more than {limits.max_connections} concurrent connections "
                "(LABKIT_MAX_CONNECTIONS)")
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                            b"content-length: 38\r\n\r\nThe lab has too many open connections\n")
            transport.close()
            return
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            limits: Limits = self.config.labkit_limits  # type: ignore[attr-defined]
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        limits: Limits = self.config.labkit_limits  # type: ignore[attr-defined]
        self.config.labkit_refusals.count(  # type: ignore[attr-defined]
            "slow-headers", f"request headers not complete within {limits.header_timeout:g} s "
            "(LABKIT_HEADER_TIMEOUT)")
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle:  # bytes of a new request (also the next one on a keep-alive connection)
            self._arm_header_timer()
            if self._headers_too_large(data):
                return
        before = self.cycle
        token = CURRENT_TRANSPORT.set(self.transport)
        try:
            super().data_received(data)
        except Exception as exc:  # noqa: BLE001 - a request h11 took but uvicorn cannot turn into a scope
            self.config.labkit_refusals.count(  # type: ignore[attr-defined]
                "bad-request", f"a request the HTTP layer could not read ({type(exc).__name__}: {str(exc)[:120]})")
            self._refuse(400, "Bad Request", "The request could not be read.\n")
        finally:
            CURRENT_TRANSPORT.reset(token)
        if self.cycle is not before or self.transport.get_protocol() is not self:
            self._disarm_header_timer()  # headers complete (a request began, or a WebSocket upgrade)
            self._head = b""

    def _headers_too_large(self, data: bytes) -> bool:
        """Count this request's bytes up to the blank line that ends its headers; over `max_header_bytes`,
        answer 431 and close. h11's own bound applies only while headers are incomplete, so 20 KB of
        headers (or 5,000 of them) arriving in one read went through."""
        limits: Limits = self.config.labkit_limits  # type: ignore[attr-defined]
        seen = self._head + data[: limits.max_header_bytes + 4]
        end = seen.find(b"\r\n\r\n")
        size = len(seen) if end < 0 else end + 4
        if size <= limits.max_header_bytes:
            self._head = seen if end < 0 else b""
            return False
        self._head = b""
        self.config.labkit_refusals.count(  # type: ignore[attr-defined]
            "headers-too-large", f"request headers over {limits.max_header_bytes} bytes (LABKIT_MAX_HEADER_BYTES)")
        self._refuse(431, "Request Header Fields Too Large",
                     f"Request headers over {limits.max_header_bytes} bytes.\n")
        return True

    def _refuse(self, status: int, phrase: str, text: str) -> None:
        """Answer `status` and close the connection, outside the request cycle (nothing of it was read)."""
        self._disarm_header_timer()
        body = text.encode()
        if not self.transport.is_closing():
            self.transport.write(f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


class CountingLogger:
    """Stands in for uvicorn's "uvicorn.error" logger on each connection: warnings and errors (a malformed
    request, an exception in the app, a bad WebSocket frame) become counted refusals, one event line per
    kind per window, with no traceback; debug and trace output is dropped. A lab bug still shows: its
    exception's type, message and place are in the line."""

    level = logging.WARNING  # uvicorn compares this with its TRACE level before building trace lines

    def __init__(self, refusals: Refusals | None):
        self.refusals = refusals

    def _count(self, kind: str, msg: Any, args: tuple, exc_info: Any) -> None:
        if self.refusals is None:
            return
        text = str(msg) % args if args else str(msg)
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc_info is True:
            exc = sys.exc_info()[1]
        if exc is not None:
            text = f"{text.strip()} {type(exc).__name__}: {str(exc)[:200]}"
        self.refusals.count(kind, text.strip()[:300])

    def warning(self, msg: Any, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._count("http-error", msg, args, exc_info)

    def error(self, msg: Any, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._count("server-error", msg, args, exc_info)

    def exception(self, msg: Any, *args: Any, **_: Any) -> None:
        self._count("server-error", msg, args, True)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR:
            self.error(msg, *args, **kwargs)
        elif level >= logging.WARNING:
            self.warning(msg, *args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    debug = info

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return level >= logging.WARNING


async def read_body(receive: Callable, limits: Limits) -> bytes:
    """The whole request body, within `max_body_bytes` and `read_timeout` (raises `BodyRefused`)."""
    chunks: list[bytes] = []
    size = 0
    deadline = asyncio.get_running_loop().time() + limits.read_timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(receive(), max(remaining, 0.001))
        except asyncio.TimeoutError:
            raise BodyRefused(408, "slow-body", f"request body not received within {limits.read_timeout:g} s "
                                                "(LABKIT_READ_TIMEOUT)") from None
        if message["type"] == "http.disconnect":
            raise BodyRefused(0, "", "")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise BodyRefused(413, "body-too-large", f"request body over {limits.max_body_bytes} bytes "
                                                     "(LABKIT_MAX_BODY_BYTES)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyRefused(Exception):
    """A request body that broke a limit: the HTTP status to answer with and the refusal's kind."""

    def __init__(self, status: int, kind: str, reason: str):
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


async def send_within(send: Callable, message: dict[str, Any], timeout: float,
                      transport: asyncio.Transport | None = None) -> None:
    """`send(message)`, cutting the connection if the peer does not take it within `timeout` s.

    A peer that stops reading fills the socket buffer and uvicorn's send waits for it to drain, for
    ever; cutting the transport wakes every waiter on that connection."""
    try:
        await asyncio.wait_for(send(message), timeout)
    except asyncio.TimeoutError:
        transport = transport or CURRENT_TRANSPORT.get()
        if transport is not None:
            transport.abort()
        raise SendTimeout(f"the peer did not take data for {timeout:g} s (LABKIT_SEND_TIMEOUT); "
                          "its connection was cut") from None


class SendTimeout(ConnectionError):
    """A peer stopped reading: its connection was cut."""


def websocket_protocol() -> type:
    """uvicorn's websockets-sansio protocol (the fastest measured here, see the README) with the same
    counting logger: a bad frame or an exception in the socket endpoint is a counted line, not a traceback."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class LabWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.logger = CountingLogger(getattr(config, "labkit_refusals", None))  # type: ignore[assignment]
            self.frame_sink: Callable[[bytes], None] | None = None  # see take_frames

        def take_frames(self, sink: Callable[[bytes], None]) -> bool:
            """From now on hand each binary message to `sink` as it is parsed, on the loop, instead of
            queueing it as an ASGI `websocket.receive` for the app's task. True if done; False while
            messages are still queued (the app reads those first, then asks again, so order holds).

            Why: uvicorn queues each message as a dict, pauses reading until the app's task wakes and
            takes it, then resumes reading: a task switch and two changes to the poller per 20 ms frame,
            which measured as most of the lab's CPU per frame over a bare websockets server (issue 20).
            Text messages and the close still come through `receive()`."""
            if not self.queue.empty() or self.close_sent:
                return False
            self.frame_sink = sink
            return True

        def send_receive_event_to_app(self) -> None:
            sink = self.frame_sink
            if sink is None or self.curr_msg_data_type != "bytes" or self.close_sent:
                super().send_receive_event_to_app()
                return
            frames = self.frames
            self.frames = []
            try:
                sink(frames[0] if len(frames) == 1 else b"".join(frames))
            except Exception:  # noqa: BLE001 - as uvicorn treats the app's errors: counted, the socket closed
                self.logger.exception("Exception in the /socket frame handler")
                self.frame_sink = None
                self.transport.abort()

    return LabWebSocketProtocol
