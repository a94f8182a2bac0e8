"""`/browser-audio`: a notebook page's live audio straight to the lab (labkit/server/browser_audio.py).

A real server (uvicorn on its thread) and a real WebSocket client; the peer stands in for the widget.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from labkit.events import EventLog
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.browser_audio import MAX_MESSAGE_BYTES, MAX_SOCKETS, BrowserAudioHub
from labkit.server.sockets import SocketHub

ORIGIN = "http://127.0.0.1:8888"  # a notebook page's


class Peer:
    """What a widget does with its socket: keeps it, takes the voice, has figures."""

    rate = 16000

    def __init__(self) -> None:
        self.conn = None
        self.voice: list[tuple[bytes, float | None]] = []
        self.opened = threading.Event()
        self.closed = threading.Event()

    def direct_opened(self, conn) -> None:
        self.conn = conn
        self.opened.set()

    def direct_closed(self, conn) -> None:
        self.closed.set()

    def direct_voice(self, samples: bytes, sent_ms: float | None) -> None:
        self.voice.append((samples, sent_ms))

    def direct_figures(self) -> dict:
        return {"mic_delay_ms": 12.5, "pieces": len(self.voice)}


@pytest.fixture
def lab_server(tmp_path):
    events = EventLog()
    sockets = SocketHub(events, folder=tmp_path / "recordings")
    hub = BrowserAudioHub()
    ctx = ServerContext(events=events, answer=lambda p: [], sockets=sockets, browser_audio=hub)

    def close() -> str | None:
        hub.close_all()
        return sockets.close_all()

    runner = ServerRunner(create_app(ctx), on_stop=close).start()
    try:
        yield hub, runner, events
    finally:
        runner.stop()


def _refused(url: str, **kwargs) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(url, open_timeout=5, **kwargs).close()
    assert info.value.response.status_code == 403


def test_call_audio_goes_out_and_voice_comes_in_with_its_date(lab_server):
    hub, runner, _ = lab_server
    peer = Peer()
    url = hub.url(runner.host, runner.port, hub.register(peer))
    with connect(url, origin=ORIGIN, open_timeout=5) as ws:
        hello = json.loads(ws.recv(5))
        assert hello == {"event": "audio", "rate": 16000}
        assert peer.opened.wait(5)
        ws.send(json.dumps({"listen": True}))
        deadline = time.monotonic() + 5
        while not peer.conn.listening and time.monotonic() < deadline:
            time.sleep(0.01)
        frames = [np.full(320, i, dtype="<i2").tobytes() for i in range(12)]
        for frame in frames:  # from this thread, not the server's loop (as the call's listener does)
            peer.conn.send_audio(frame, time.time() * 1000 - 5, 16000)
        got, metas = [], []
        while len(got) < len(frames):
            message = ws.recv(5)
            if isinstance(message, str):
                metas.append(json.loads(message))
            else:
                got.append(message)
        assert got == frames  # every frame, in order, unchanged
        assert metas[0]["rate"] == 16000 and metas[0]["age_ms"] >= 10 and len(metas) >= 2
        # the microphone: 20 ms pieces, the first dated
        voice = [np.full(320, 100 + i, dtype="<i2").tobytes() for i in range(30)]
        ws.send(json.dumps({"t": 1234.5}))
        for piece in voice:
            ws.send(piece)
            time.sleep(0.02)
        mic = json.loads(next(m for m in iter(lambda: ws.recv(5), None) if isinstance(m, str) and "mic" in m))
        assert mic["mic"]["mic_delay_ms"] == 12.5
    assert peer.closed.wait(5)
    assert [v for v, _ in peer.voice] == voice
    assert peer.voice[0][1] == 1234.5 and peer.voice[1][1] is None
    assert hub.origins[-1][1] == ORIGIN
    assert hub.open_count == 0


def test_only_its_token_from_loopback_from_a_page_opens_it(lab_server):
    hub, runner, events = lab_server
    token = hub.register(Peer())
    base = f"ws://127.0.0.1:{runner.port}/browser-audio"
    _refused(f"{base}?token=guessed", origin=ORIGIN)
    _refused(f"{base}", origin=ORIGIN)
    _refused(f"{base}?token={token}")  # no Origin: not a browser's page
    _refused(f"{base}?token={token}", origin="file://")
    # what a tunnel delivers: the agent connects from loopback, but names the public host and says who it
    # forwards for
    _refused(f"{base}?token={token}", origin=ORIGIN, additional_headers={"X-Forwarded-For": "203.0.113.9"})
    _refused(f"ws://abc.ngrok.app/browser-audio?token={token}", origin=ORIGIN,
             sock=socket.create_connection(("127.0.0.1", runner.port)))
    hub.unregister(token)
    _refused(f"{base}?token={token}", origin=ORIGIN)
    runner.refusals.flush()
    refused = [e for e in events if e.payload.get("kind") == "browser-audio-refused"]
    assert refused, "the refusals are counted in the event log"


def test_a_message_too_big_or_voice_faster_than_real_time_closes_it(lab_server):
    hub, runner, _ = lab_server
    url = hub.url(runner.host, runner.port, hub.register(Peer()))
    with connect(url, origin=ORIGIN, open_timeout=5, max_size=None) as ws:
        ws.recv(5)
        ws.send(b"\0" * (MAX_MESSAGE_BYTES + 2))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(5)
        assert info.value.rcvd.code == 1009
    with connect(url, origin=ORIGIN, open_timeout=5) as ws:
        ws.recv(5)
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(200):  # 4 s of voice at once
                ws.send(b"\0" * 640)
            while True:
                ws.recv(5)
        assert info.value.rcvd.code == 1008


def test_a_newer_connection_takes_the_token_and_lab_stop_closes_all(lab_server):
    hub, runner, _ = lab_server
    peer = Peer()
    url = hub.url(runner.host, runner.port, hub.register(peer))
    first = connect(url, origin=ORIGIN, open_timeout=5)
    first.recv(5)
    second = connect(url, origin=ORIGIN, open_timeout=5)
    second.recv(5)
    with pytest.raises(ConnectionClosed) as info:
        first.recv(5)
    assert info.value.rcvd.code == 4000  # the page does not reconnect on this one
    hub.close_all()
    with pytest.raises(ConnectionClosed) as info:
        second.recv(5)
    assert info.value.rcvd.code == 1001
    _refused(url, origin=ORIGIN)  # the tokens went with it
    first.close()
    second.close()


def test_sockets_are_capped(lab_server):
    hub, runner, _ = lab_server
    url = hub.url(runner.host, runner.port, hub.register(Peer()))
    tokens = [hub.register(Peer()) for _ in range(MAX_SOCKETS)]
    held = [connect(hub.url(runner.host, runner.port, t), origin=ORIGIN, open_timeout=5) for t in tokens]
    try:
        _refused(url, origin=ORIGIN)
    finally:
        for ws in held:
            ws.close()
