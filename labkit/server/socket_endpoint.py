"""`/socket` as a native ASGI WebSocket handler on uvicorn's event loop.

The checks a public endpoint needs come before the upgrade is accepted (Host, the socket token), then
the platform's first message must be `websocket:connected` with a content type we can record; after
that each binary message is a 20 ms frame for the session's recorder, each text message an event.
Frames skip the ASGI queue once it is empty: the lab's uvicorn protocol hands each one to the session
as it is parsed (labkit.server.limits, `take_frames`: no task switch per frame).
Size caps and ping timeouts are uvicorn's (`ws_max_size`, `ws_ping_interval/timeout`, set by the runner).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from labkit import protocol
from labkit.errors import SocketError
from labkit.server.limits import CURRENT_TRANSPORT, Limits, Refusals

CONNECT_TIMEOUT = 10.0  # seconds to wait for the websocket:connected message


async def _reject(send) -> None:
    """Refuse the upgrade: a close before accepting is a 403 (the reason goes to the event log only)."""
    await send({"type": "websocket.close", "code": 1008})


async def serve(hub, scope: dict[str, Any], receive, send, limits: Limits, refusals: Refusals,
                allowed_hosts: set[str] | None = None) -> None:
    """Check, accept and record one connection; returns when it ends."""
    from labkit.media.frames import parse_content_type
    from labkit.server.app import host_allowed

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    link = query.get("link", [None])[0]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if allowed_hosts is not None and not host_allowed(headers.get("host", ""), allowed_hosts):
        refusals.count("bad-host", f"Host {headers.get('host', '')!r} is not allowed", source="socket")
        await _reject(send)
        return
    if not hub.token_ok(query.get("token", [""])[0], link):
        refusals.count("bad-socket-token", "WebSocket without a valid token refused", source="socket")
        await _reject(send)
        return
    await send({"type": "websocket.accept"})
    try:
        first = await asyncio.wait_for(receive(), CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        refusals.count("no-hello", "no websocket:connected message in time", source="socket")
        await send({"type": "websocket.close", "code": 1008, "reason": "expected websocket:connected"})
        return
    if first["type"] != "websocket.receive":
        return
    hello = protocol.parse(first["text"]) if first.get("text") is not None else {}
    if hello.get("event") != protocol.CONNECTED:
        hub.events.add("socket", {"status": "refused", "link": link, "reason":
                                  "the first message was not websocket:connected"})
        await send({"type": "websocket.close", "code": 1008, "reason": "expected websocket:connected"})
        return
    try:
        rate = parse_content_type(str(hello.get("content-type", "")))
    except SocketError as exc:
        hub.events.add("socket", {"status": "refused", "link": link, "reason": str(exc)})
        await send({"type": "websocket.close", "code": 1003, "reason": "unsupported content-type"})
        return
    extra = {k: v for k, v in hello.items() if k not in ("event", "content-type")}
    session = hub.open_session(link, rate, extra, loop=asyncio.get_running_loop(), send=send,
                               transport=CURRENT_TRANSPORT.get(), send_timeout=limits.send_timeout)
    session._event({"event": protocol.CONNECTED, "content-type": hello.get("content-type"), **extra})
    transport = CURRENT_TRANSPORT.get()
    protocol_ = transport.get_protocol() if transport is not None else None
    take_frames = getattr(protocol_, "take_frames", None)  # the lab's uvicorn protocol (limits.py)
    direct = session.frames_direct = take_frames is not None and take_frames(session.on_frame)
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is not None:
                session.on_frame(data)
            elif message.get("text") is not None:
                session.on_text(message["text"])
            if not direct and take_frames is not None:
                direct = take_frames(session.on_frame)  # once what was queued before is read: in order
                session.frames_direct = direct
    finally:
        if direct:
            protocol_.frame_sink = None
        session._finish()
