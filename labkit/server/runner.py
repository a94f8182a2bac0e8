"""Run the lab's app on uvicorn in a daemon thread that a notebook can start again and stop in bounded time.

uvicorn's `Config` + `Server` split lets the server run on its own event loop in a background thread,
so the kernel's loop stays free. The listening socket is bound here, before uvicorn starts, so that
port 0 and the busy-port rule (a clear error, or the next free port) keep working. Settings chosen:
uvicorn's websockets-sansio protocol (the fastest measured here, see the README) and our h11 protocol
(header timeout and size, connection cap), both logging into the counted refusals; lifespan off, no
access log, uvicorn's loggers at WARNING, and uvloop's event loop where it is installed (`LABKIT_EVENT_LOOP`,
see `loop_runner`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from labkit.errors import ConfigError, ServerError
from labkit.ports import bind_first, moved_note
from labkit.server.limits import LabHttpProtocol, Limits, Refusals, websocket_protocol

log = logging.getLogger("labkit.server")


EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_runner(choice: str | None = None) -> tuple[str, Callable[[Any], Any]]:
    """(name, run) of the event loop the server runs on: `LABKIT_EVENT_LOOP` = auto | uvloop | asyncio.

    auto (the default) takes uvloop when it is installed (it is a dependency except on Windows, which
    it does not support). Why: uvicorn's websockets-sansio protocol pauses and resumes reading around
    every message, which costs the stdlib loop two epoll changes per 20 ms frame; on uvloop the lab
    held 300 streams instead of 200 (bench/bench_socket_server.py, figures in the README)."""
    choice = (choice if choice is not None else os.environ.get("LABKIT_EVENT_LOOP", "")).strip() or "auto"
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"LABKIT_EVENT_LOOP={choice!r} is not one of {', '.join(EVENT_LOOPS)}; "
                          "unset it for auto (uvloop when installed).")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("LABKIT_EVENT_LOOP=uvloop, but uvloop is not installed (it does not run on "
                                  "Windows): pip install uvloop, or unset LABKIT_EVENT_LOOP.") from None
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run


class _Server(uvicorn.Server):
    """uvicorn's server, with a shutdown that never waits longer than its grace period."""

    grace: float = 2.0
    cut: int = 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await asyncio.wait_for(super().shutdown(sockets), self.grace)
        except asyncio.TimeoutError:
            pass
        for server in getattr(self, "servers", []):
            server.close()
        _abort_all(self)  # peers that would not close in the grace period: cut them


class ServerRunner:
    """The lab's ASGI app (or a Flask app, wrapped) on uvicorn, on a named daemon thread.

    `ServerRunner(create_app(ctx))` serves the Flask app and, when `ctx.sockets` is set, its `/socket`
    WebSocket, both on one port. `stop()` closes the WebSockets (`on_stop`), stops uvicorn and frees the
    port within `limits.stop_timeout` seconds, cutting connections that do not close, and says so.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, fallback: int = 10,
                 name: str = "labkit-server", on_stop: Callable[[], Any] | None = None,
                 limits: Limits | None = None):
        self.app = app
        self.host = host
        self.requested_port = port
        self.fallback = fallback
        self.name = name
        self.on_stop = on_stop
        self.limits = limits or Limits.from_env()
        self.port: int | None = None
        self.note: str | None = None  # e.g. "port 8000 was busy, using 8001"
        self.cut_note: str | None = None  # what the last stop() had to cut
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_name, self._run_loop = loop_runner()  # a bad LABKIT_EVENT_LOOP fails here, before binding
        self.refusals: Refusals | None = None
        self._server: _Server | None = None
        self._asgi: Any = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebinding right after a stop works
            sock.bind((self.host, port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _build(self, sock: socket.socket) -> _Server:
        from labkit.server.asgi import LabAsgi

        ctx = getattr(self.app, "extensions", {}).get("labkit") if hasattr(self.app, "wsgi_app") else None
        events = getattr(ctx, "events", None)
        self.refusals = getattr(ctx, "refusals", None) or Refusals(
            events.add if events is not None else (lambda kind, payload: None), self.limits.refusal_window)
        self.refusals.window = self.limits.refusal_window
        if ctx is not None:
            ctx.refusals = self.refusals
        if hasattr(self.app, "wsgi_app"):  # a Flask app: wrap it, with its lab's WebSocket endpoint
            browser_audio = getattr(ctx, "browser_audio", None)
            if browser_audio is not None and browser_audio.refusals is None:
                browser_audio.refusals = self.refusals
            self._asgi = LabAsgi(self.app, self.limits, self.refusals, getattr(ctx, "sockets", None),
                                 allowed_hosts=getattr(ctx, "allowed_hosts", None), browser_audio=browser_audio)
        else:
            self._asgi = self.app
        limits = self.limits
        config = uvicorn.Config(
            self._asgi, http=LabHttpProtocol, ws=websocket_protocol(), loop="asyncio", lifespan="off",
            log_config=None, access_log=False, server_header=False,
            ws_max_size=limits.ws_max_message_bytes, ws_ping_interval=limits.ws_ping_interval,
            ws_ping_timeout=limits.ws_ping_timeout, ws_per_message_deflate=False,
            timeout_keep_alive=5, timeout_graceful_shutdown=max(1, int(limits.stop_timeout / 3)),
            h11_max_incomplete_event_size=limits.max_header_bytes + 4,  # and LabHttpProtocol counts whole reads
        )
        config.labkit_limits = limits  # type: ignore[attr-defined]  # read by LabHttpProtocol
        config.labkit_refusals = self.refusals  # type: ignore[attr-defined]
        for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):  # notebooks: no start/stop chatter
            logging.getLogger(name).setLevel(logging.WARNING)
        server = _Server(config)
        server.grace = limits.stop_timeout / 2
        return server

    def start(self) -> ServerRunner:
        if self.running:
            return self
        sock = bind_first(self.host, self.requested_port, self.fallback, self._bind)
        self.port = sock.getsockname()[1]
        self.note = moved_note(self.requested_port, self.port)
        self._server = server = self._build(sock)
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            async def main() -> None:
                self.loop = asyncio.get_running_loop()
                ready.set()
                await server.serve(sockets=[sock])

            try:
                self._run_loop(main())
            except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
                failed.append(exc)
                log.exception("the lab's server stopped with an error")
            finally:
                sock.close()
                ready.set()

        self._thread = threading.Thread(target=run, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not server.started:
            self.stop()
            raise ServerError(f"the lab's server did not start on port {self.port}"
                              + (f": {failed[0]!r}" if failed else ""))
        return self

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the server's event loop (from any thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float | None = None) -> str | None:
        """Close WebSockets, stop serving and free the port within `timeout` s (default
        `limits.stop_timeout`), cutting what does not close in time. Returns what was cut, if anything."""
        budget = self.limits.stop_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        server, thread = self._server, self._thread
        if server is None:
            return None
        cut: list[str] = []
        if self.on_stop is not None:
            try:
                result = self.on_stop()
                if isinstance(result, str) and result:
                    cut.append(result)
            except Exception:  # noqa: BLE001
                log.exception("error while closing connections")
        server.should_exit = True
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic() - 0.5))
            if thread.is_alive():  # force: cut every connection and cancel every task
                server.force_exit = True
                self.call_soon(_abort_all, server)
                thread.join(max(0.1, deadline - time.monotonic()))
        if server.cut:
            cut.append(f"{server.cut} connection(s) that would not close")
        if self.refusals is not None:
            self.refusals.flush()
        if self._asgi is not None and hasattr(self._asgi, "close"):
            self._asgi.close()
        self._server = self._thread = None
        self.loop = None
        if thread is not None and thread.is_alive():
            raise ServerError(f"the server thread {thread.name} did not stop within {budget:g} s")
        self.cut_note = ("the lab's server stopped, cutting " + " and ".join(cut)) if cut else None
        if self.cut_note:
            log.warning(self.cut_note)
        return self.cut_note


def _abort_all(server: _Server) -> None:
    for conn in list(server.server_state.connections):
        transport = getattr(conn, "transport", None)
        if transport is not None:
            server.cut += 1
            transport.abort()
    for task in list(server.server_state.tasks):
        task.cancel()
