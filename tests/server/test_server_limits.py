"""The limits a public tunnel needs, one test each: body cap, slow clients, half-open and non-reading
WebSocket peers, message size, connection cap, and refusals reported as counted lines.

Peers that misbehave are raw sockets, so they do exactly what a hostile peer would (a client library
would answer pings and read for us). Waits have generous bounds only to catch a hang; nothing is timed.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import socket
import struct
import threading
import time

import pytest
from support.server import limits_servers, serve

from labkit import protocol
from labkit.errors import SocketError
from labkit.events import EventLog
from labkit.media.frames import content_type
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.limits import Limits
from labkit.server.sockets import SocketHub


@pytest.fixture(params=["uvloop", "asyncio"])
def server(tmp_path, monkeypatch, request):
    """Each limit on both event loops the server runs on (asyncio is Windows' and LABKIT_EVENT_LOOP's)."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed (it is not, on Windows)")
    monkeypatch.setenv("LABKIT_EVENT_LOOP", request.param)
    with limits_servers(tmp_path) as make:
        def on_that_loop(**limits):
            made = make(**limits)
            assert made[2].loop_name == request.param
            return made

        yield on_that_loop


def raw(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)  # a bound against hangs, not a measurement
    s.connect(("127.0.0.1", port))
    return s


def read_until_closed(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def ws_handshake(port: int, hub: SocketHub, rcvbuf: int | None = None, host: str = "127.0.0.1") -> socket.socket:
    """A WebSocket client by hand: it upgrades, says websocket:connected, then does only what we make it."""
    s = raw(port, rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    path = hub.url("", "L1")
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionRefusedError(head.decode("latin-1").splitlines()[0])
    s.sendall(ws_frame(protocol.connected(content_type(16000)).encode(), opcode=1))
    return s


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def wait_until(predicate, what: str, bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def refused(events: EventLog, kind: str) -> int:
    return sum(e.payload.get("count", 0) for e in events if e.status == "refused" and e.payload.get("kind") == kind)


def test_oversized_body_is_refused_with_413_before_it_is_read(server):
    events, _, runner = server(max_body_bytes=1000)
    s = raw(runner.port)
    # 100 MB announced, not one byte of it sent: the answer can only come from the headers
    s.sendall(f"POST /webhooks/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode())
    answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"LABKIT_MAX_BODY_BYTES" in answer
    assert not [e for e in events if e.kind == "event"]
    assert refused(events, "body-too-large") == 1


def test_chunked_body_over_the_cap_is_refused_too(server):
    events, _, runner = server(max_body_bytes=1000)
    s = raw(runner.port)
    s.sendall(b"POST /webhooks/event HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"800\r\n" + b"x" * 0x800 + b"\r\n")
    assert read_until_closed(s).startswith(b"HTTP/1.1 413")


def test_slow_headers_are_cut_off(server):
    events, _, runner = server(header_timeout=0.5)
    s = raw(runner.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ...and the blank line never comes
    assert read_until_closed(s) == b""
    wait_until(lambda: refused(events, "slow-headers") == 1, "the refusal to be reported")


def test_slow_headers_on_a_kept_alive_connection_are_cut_off(server):
    _, _, runner = server(header_timeout=0.5)
    s = raw(runner.port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while b'"labkit"}' not in first:
        first += s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    s.sendall(b"GET /healthz HTTP/1.1\r\n")  # the second request stalls
    assert read_until_closed(s) == b""


def test_slow_body_gets_408(server):
    events, _, runner = server(read_timeout=0.5)
    s = raw(runner.port)
    s.sendall(b"POST /webhooks/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"uuid\":")  # 8 of 100 bytes, then nothing
    assert read_until_closed(s).startswith(b"HTTP/1.1 408")
    assert refused(events, "slow-body") == 1 and not [e for e in events if e.kind == "event"]


def test_half_open_websocket_peer_is_closed(server):
    _, hub, runner = server(ws_ping_interval=0.3, ws_ping_timeout=0.3)
    s = ws_handshake(runner.port, hub)  # never answers a ping: like a peer whose network vanished
    wait_until(lambda: hub.sessions and not hub.sessions[0].open, "the half-open socket to be closed")
    assert read_until_closed(s)[-2:] != b""  # it got the ping (and a close), then the end of the connection


def test_websocket_message_over_the_cap_closes_the_socket(server):
    _, hub, runner = server(ws_max_message_bytes=4096)
    s = ws_handshake(runner.port, hub)
    wait_until(lambda: hub.sessions, "the session")
    s.sendall(ws_frame(b"\x00" * 640))
    wait_until(lambda: hub.sessions[0].frames_received == 1, "the first frame")
    s.sendall(ws_frame(b"\x00" * 10_000))
    closing = read_until_closed(s)
    assert b"\x88" in closing[:2] and struct.pack("!H", 1009) in closing  # close frame, "message too big"
    wait_until(lambda: not hub.sessions[0].open, "the session to end")
    assert hub.sessions[0].frames_received == 1


def test_connections_over_the_cap_get_503(server):
    events, _, runner = server(max_connections=3)
    held = [raw(runner.port) for _ in range(3)]
    for s in held:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(12).startswith(b"HTTP/1.1 200")  # kept alive: still counted
    extra = raw(runner.port)
    assert read_until_closed(extra).startswith(b"HTTP/1.1 503")
    assert refused(events, "too-many-connections") == 1
    for s in held:
        s.close()


def test_a_peer_that_stops_reading_cannot_block_the_sender(server):
    _, hub, runner = server(send_timeout=0.5)
    peer = ws_handshake(runner.port, hub, rcvbuf=4096)  # reads nothing from here on
    wait_until(lambda: hub.sessions, "the session")
    session = hub.sessions[0]
    with pytest.raises(SocketError, match="LABKIT_SEND_TIMEOUT|failed"):
        for _ in range(200):  # the socket buffers fill, then one send waits out its timeout
            session._send(b"\x00" * 65536)
    wait_until(lambda: not session.open, "the stalled peer to be cut")
    peer.close()


def test_a_peer_that_stops_reading_cannot_block_stop(tmp_path):
    events, hub, runner = serve(tmp_path, send_timeout=60.0, stop_timeout=2.0)
    peer = ws_handshake(runner.port, hub, rcvbuf=4096)  # reads nothing from here on
    wait_until(lambda: hub.sessions, "the session")
    session = hub.sessions[0]
    failures = []

    def send_forever():
        try:
            for _ in range(200):
                session._send(b"\x00" * 65536)
        except SocketError as exc:
            failures.append(exc)

    blocked = threading.Thread(target=send_forever, daemon=True)
    blocked.start()
    wait_until(lambda: session._send_lock.locked() and blocked.is_alive(), "a send to be stuck")
    time.sleep(0.3)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    stopper.join(30)  # a hang detector: stop's own bound is 2 s
    assert not stopper.is_alive()
    assert runner.cut_note and "did not take the close" in runner.cut_note
    blocked.join(30)
    assert not blocked.is_alive() and not session.open and failures  # the stuck send was ended, with an error
    peer.close()


def test_thousands_of_refusals_make_a_few_counted_lines(server):
    events, _, runner = server(max_body_bytes=10, refusal_window=60)
    for _ in range(60):
        s = raw(runner.port)
        s.sendall(b"POST /webhooks/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\n")
        assert read_until_closed(s).startswith(b"HTTP/1.1 413")
    assert len([e for e in events if e.status == "refused"]) == 1  # the first at once, the rest counted
    runner.refusals.flush()
    lines = [e for e in events if e.status == "refused"]
    assert len(lines) == 2 and sum(e.payload["count"] for e in lines) == 60
    assert "59 more" in lines[1].payload["reason"]


def test_limits_read_from_the_environment():
    limits = Limits.from_env({"LABKIT_MAX_BODY_BYTES": "2048", "LABKIT_SEND_TIMEOUT": "0.25"})
    assert limits.max_body_bytes == 2048 and limits.send_timeout == 0.25
    from labkit.errors import ConfigError

    with pytest.raises(ConfigError, match="LABKIT_HEADER_TIMEOUT"):
        Limits.from_env({"LABKIT_HEADER_TIMEOUT": "soon"})


def test_the_event_loop_setting():
    import asyncio

    from labkit.errors import ConfigError
    from labkit.server.runner import loop_runner

    assert loop_runner("asyncio") == ("asyncio", asyncio.run)
    assert loop_runner("")[0] == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    with pytest.raises(ConfigError, match="LABKIT_EVENT_LOOP='trio' is not one of auto, uvloop, asyncio"):
        loop_runner("trio")


def test_a_client_that_stops_reading_a_download_is_cut(server, tmp_path):
    events = EventLog()
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "long.wav").write_bytes(b"RIFF" + b"\x00" * (16 * 1024 * 1024))
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], audio_dirs=[folder])),
                          limits=Limits(send_timeout=0.5)).start()
    try:
        s = raw(runner.port, rcvbuf=4096)
        s.sendall(b"GET /audio/long.wav HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ...and never reads
        wait_until(lambda: _flushed(runner, events), "the stalled download to be cut")
        s.close()
    finally:
        runner.stop()


def _flushed(runner, events) -> bool:
    runner.refusals.flush()
    return refused(events, "slow-reader") > 0


def test_restarts_leave_no_threads_behind(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    for _ in range(4):
        events, hub, runner = serve(tmp_path)
        s = raw(runner.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # runs on a2wsgi's thread pool
        assert s.recv(12).startswith(b"HTTP/1.1 200")
        s.close()
        runner.stop()
    def leftovers() -> list[threading.Thread]:  # a2wsgi's pool threads are not daemons: they would pile up
        return [t for t in threading.enumerate() if t.ident not in before
                and (not t.daemon or t.name.startswith(("WSGI", "labkit-server")))]

    wait_until(lambda: not leftovers(), "the server's threads to end")


def test_a_slow_frame_listener_does_not_delay_other_sockets(server):
    _, hub, runner = server()
    slow_seen = []
    a = ws_handshake(runner.port, hub)
    wait_until(lambda: hub.sessions, "the first session")
    hub.sessions[0].add_frame_listener(lambda frame: (time.sleep(0.05), slow_seen.append(1)))
    b_url = hub.url("", "B")
    from websockets.sync.client import connect

    b = connect(f"ws://127.0.0.1:{runner.port}{b_url}")
    b.send(protocol.connected(content_type(16000)))
    wait_until(lambda: len(hub.sessions) == 2, "the second session")
    frame = b"\x00" * 640
    for _ in range(50):
        a.sendall(ws_frame(frame))
        b.send(frame)
    wait_until(lambda: hub.sessions[1].frames_received == 50 and hub.sessions[0].frames_received == 50,
               "both recordings")
    assert len(slow_seen) < 50  # the listener is still behind, yet every frame of both calls was recorded
    a.close()
    b.close()


def test_websocket_with_a_foreign_host_is_refused(server):
    events, hub, runner = server()
    with pytest.raises(ConnectionRefusedError, match="403"):
        ws_handshake(runner.port, hub, host="attacker.example")  # DNS rebinding: the same check as HTTP
    assert not hub.sessions and refused(events, "bad-host") == 1


def test_limits_come_from_dotenv_and_the_environment(tmp_path, monkeypatch):
    from labkit.server.limits import limits_for

    env = tmp_path / ".env"
    env.write_text("LABKIT_MAX_CONNECTIONS=42\nLABKIT_SEND_TIMEOUT=3\n")
    monkeypatch.setenv("LABKIT_SEND_TIMEOUT", "0.75")  # the environment wins, as for every setting
    limits = limits_for(env)
    assert limits.max_connections == 42 and limits.send_timeout == 0.75 and limits.header_timeout == 10.0
