"""The hub's recording writer: every frame in the WAV in order with a valid header after every tick, and a
writer that falls behind says so and sheds nothing silently (labkit.server.socket_workers)."""

import threading
import time
import wave

import numpy as np
import pytest
from support.server import socket_hub
from websockets.sync.client import connect

import labkit.server.socket_session as socket_session
import labkit.server.socket_workers as workers
from labkit import protocol
from labkit.media.frames import content_type


@pytest.fixture
def hub(tmp_path):
    with socket_hub(tmp_path) as made:
        yield made


def numbered(i: int) -> bytes:
    return np.full(320, i, dtype="<i2").tobytes()


def read_header_and_frames(path) -> np.ndarray:
    """What `wave` (which trusts the header's sizes) reads: each frame's first sample."""
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert data.size % 320 == 0
    raw = path.read_bytes()  # no byte the header does not count: RIFF spans the file, the data chunk its samples,
    assert int.from_bytes(raw[4:8], "little") == len(raw) - 8  # and space reserved ahead of the data (frames
    rest = raw[44 + data.size * 2:]  # written through a map, labkit.media.wav_tail) is one padding chunk
    assert not rest or (rest[:4] == b"JUNK" and int.from_bytes(rest[4:8], "little") == len(rest) - 8)
    blocks = data.reshape(-1, 320)
    assert (blocks == blocks[:, :1]).all()
    return blocks[:, 0]


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def open_call(hub, link: str):
    """A platform-side socket that said websocket:connected, and the hub's session for it."""
    ws = connect(hub.url(hub.base, link))
    ws.send(protocol.connected(content_type(16000)))
    wait_until(lambda: hub.sessions)
    return ws, hub.sessions[0]


def test_every_tick_leaves_a_valid_wav_with_every_frame_in_order(hub):
    ws, session = open_call(hub, "T")
    sent = 0
    for burst in (1, 1, 4, 2, 9, 1, 30):
        for _ in range(burst):
            ws.send(numbered(sent))
            sent += 1
        wait_until(lambda n=sent: session.frames_written == n)  # the writer's next tick
        assert np.array_equal(read_header_and_frames(session.path), np.arange(sent))
    ws.close()
    wait_until(lambda: session.closed.is_set())
    assert np.array_equal(read_header_and_frames(session.path), np.arange(sent))
    closed = [e for e in hub.events if e.status == "socket-closed"][0]
    assert closed.payload["frames_shed"] == 0 and closed.payload["frames_received"] == sent


def test_a_writer_that_falls_behind_says_so_and_counts_what_it_sheds(hub, monkeypatch):
    """Bound the backlog at 10 frames and hold the writer back: 10 frames (the one being written counts
    until it is on disk) are queued and written in order, the rest are shed, and that is said (events,
    counts), never silent."""
    hub.workers.direct = False  # as after a slow disk: recording on the writer thread
    writer = hub.workers.writer
    writer.max_backlog_bytes = 10 * 640
    monkeypatch.setattr(workers, "BEHIND_SECONDS", 0.1)  # 5 frames of one call waiting: behind
    release = threading.Event()
    ws, session = open_call(hub, "S")
    real = session._write_frames
    session._write_frames = lambda frames: (release.wait(10), real(frames))  # a disk that stopped answering
    ws.send(numbered(0))
    wait_until(lambda: len(session._pending) == 0)  # the writer took frame 0 and is stuck writing it
    for i in range(1, 25):
        ws.send(numbered(i))
    wait_until(lambda: session.frames_received == 25)
    assert session.frames_shed == 15 and writer.backlog_bytes <= writer.max_backlog_bytes
    release.set()
    ws.close()
    wait_until(lambda: session.closed.is_set())
    assert np.array_equal(read_header_and_frames(session.path), np.arange(10))  # what was admitted, in order
    statuses = [e.status for e in hub.events]
    assert "recording-frames-shed" in statuses and "recording-behind" in statuses
    shed = next(e for e in hub.events if e.status == "recording-frames-shed")
    assert "frames_shed" in shed.payload["reason"]
    closed = next(e for e in hub.events if e.status == "socket-closed")
    assert closed.payload["frames_shed"] == 15 and closed.payload["frames_received"] == 25
    wait_until(lambda: "recording-caught-up" in [e.status for e in hub.events])


def test_a_slow_disk_moves_recording_off_the_loop_and_keeps_every_frame_in_order(hub, monkeypatch):
    """Writes on the loop that take too long move recording to the writer thread, mid-call, with an
    event; the frames written on the loop and those written by the thread follow each other in order."""
    monkeypatch.setattr(workers, "SLOW_WRITE", -1.0)  # every write counts as slow
    monkeypatch.setattr(socket_session, "SLOW_WRITE", -1.0)
    assert hub.workers.direct
    ws, session = open_call(hub, "D")
    for i in range(40):
        ws.send(numbered(i))
    wait_until(lambda: session.frames_written == 40)
    assert not hub.workers.direct and session._tracked  # moved after SLOW_WRITES writes
    assert np.array_equal(read_header_and_frames(session.path), np.arange(40))
    ws.close()
    wait_until(lambda: session.closed.is_set())
    assert np.array_equal(read_header_and_frames(session.path), np.arange(40))
    moved = [e for e in hub.events if e.status == "recording-on-writer-thread"]
    assert len(moved) == 1 and "slow disk" in moved[0].payload["reason"]


@pytest.mark.parametrize("burst", [False, True])
def test_the_file_is_made_off_the_loop_and_the_call_comes_back_to_it(hub, monkeypatch, burst):
    """The first frame goes to the writer thread, which makes the WAV (0.2-0.4 ms each, which for many calls
    starting at once held the loop) and gives the call back to the loop; frames that arrived meanwhile (a
    burst of 150 sent at once) are written in order, and the rest through the loop's map of the file."""
    made_on: list[str] = []
    open_recorder = socket_session.SocketSession._open_recorder

    def noting(self):
        made_on.append(threading.current_thread().name)
        return open_recorder(self)

    monkeypatch.setattr(socket_session.SocketSession, "_open_recorder", noting)
    ws, session = open_call(hub, "H")
    for i in range(150):
        ws.send(numbered(i))
        if not burst:
            time.sleep(0.002)
    wait_until(lambda: session.frames_written == 150)
    assert made_on == ["labkit-socket-writer"]
    wait_until(lambda: not session._tracked)  # back on the loop
    for i in range(150, 200):
        ws.send(numbered(i))
    wait_until(lambda: session.frames_written == 200)
    assert not session._tracked and hub.workers.direct and hub.workers.writer.backlog_bytes == 0
    assert session._recorder._tail is not None  # still the map: the writer thread did not leave it
    assert np.array_equal(read_header_and_frames(session.path), np.arange(200))
    ws.close()
    wait_until(lambda: session.closed.is_set())
    assert np.array_equal(read_header_and_frames(session.path), np.arange(200))
