"""A FastAPI voice bot over the Vonage Voice WebSocket: it greets the caller, connects the call to its own
WebSocket, and sends every 20 ms frame of the caller's audio straight back (an echo), so the pace of what
goes back is the pace at which the caller's audio arrives.

    GET  /answer   the NCCO: a greeting, then `connect` to ws://<this host>/socket (L16 at 16 kHz)
    WS   /socket   the echo: text messages are noted (websocket:connected), binary frames go back
    POST /event    call events (kept in app.state.events)

Run it with `uvicorn echo_bot:app`; test it with `pytest` (test_echo_bot.py, the labkit plugin).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect

GREETING = "Echo bot here. Say something and hear it back."
CONTENT_TYPE = "audio/l16;rate=16000"

app = FastAPI()
app.state.events = []
app.state.socket_messages = []  # the JSON text messages the platform sent on the socket
app.state.frames_echoed = 0


@app.get("/answer")
async def answer(request: Request) -> list[dict]:
    socket = str(request.url_for("socket")).replace("http://", "ws://").replace("https://", "wss://")
    return [
        {"action": "talk", "text": GREETING},
        {"action": "connect", "endpoint": [{"type": "websocket", "uri": socket, "content-type": CONTENT_TYPE,
                                            "headers": {"caller": request.query_params.get("from", "")}}]},
    ]


@app.websocket("/socket")
async def socket(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes"):
                await ws.send_bytes(message["bytes"])  # the caller's 20 ms frame, straight back
                app.state.frames_echoed += 1
            elif message.get("text"):
                app.state.socket_messages.append(json.loads(message["text"]))
    except WebSocketDisconnect:
        pass


@app.post("/event")
async def event(request: Request) -> Response:
    app.state.events.append(await request.json())
    return Response(status_code=204)
