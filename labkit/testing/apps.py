"""Serve the app under test on a real port of 127.0.0.1, on a thread, for the length of a test.

    with serve(flask_app) as url:            # WSGI (Flask, Django, ...) through werkzeug
        vonage_app(answer_url=f"{url}/answer", event_url=f"{url}/event")
    with serve(fastapi_app, asgi=True) as url:   # ASGI (FastAPI, Starlette), WebSockets too, through uvicorn

The sandbox reaches it as Vonage reaches a deployed app: over HTTP (and ws://) on that port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["serve"]


@contextlib.contextmanager
def serve(app: Any, *, asgi: bool = False, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` on a free port until the block ends; yields its base URL (http://127.0.0.1:PORT)."""
    if asgi:
        with _serve_asgi(app, host) as url:
            yield url
        return
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # the test's output stays the test's
            pass

    server = make_server(host, 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                              name="labkit-app-under-test")
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def _serve_asgi(app: Any, host: str) -> Iterator[str]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="labkit-asgi-app-under-test")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # uvicorn offers no event for "listening"; this is start-up only
    if not server.started:
        raise RuntimeError("the ASGI app did not start within 10 s (see the log above)")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
