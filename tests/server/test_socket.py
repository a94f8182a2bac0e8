"""The lab's /socket endpoint with a plain `websockets` client standing in for the platform.

The sandbox end-to-end tests (tests/lab/test_recording_e2e.py) cover the same path with the platform
emulator; these pin down the endpoint's own rules: token, framing, recording, sending back.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import wave

import numpy as np
import pytest
from support.server import socket_hub
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from labkit import protocol
from labkit.events import EventLog
from labkit.media.frames import content_type, frame_bytes, to_frames
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.sockets import SocketHub


@pytest.fixture
def hub(tmp_path):
    with socket_hub(tmp_path) as made:
        yield made


def speech_like(seconds: float, rate: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave_ = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (np.clip(wave_ + 0.02 * rng.standard_normal(t.size), -1, 1) * 32767).astype(np.int16)


def open_socket(hub, rate=16000, link="L1", headers=None):
    ws = connect(hub.url(hub.base, link))
    ws.send(protocol.connected(content_type(rate), headers or {"caller": "447700900001"}))
    return ws


def wait_closed(hub, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(hub.recordings()) >= n and all(not s.open for s in hub.sessions):
            return
        time.sleep(0.01)
    raise AssertionError("sessions did not close")


def test_no_token_no_connection(hub):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        connect(hub.base + "/socket?link=x")
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(hub.base + "/socket?token=wrong&link=x")
    assert not hub.sessions
    # the first refusal of a kind is reported at once, the rest of its window as one counted line
    assert [(e.status, e.payload["count"]) for e in hub.events] == [("refused", 1)]
    hub.runner.refusals.flush()
    assert [(e.status, e.payload["kind"], e.payload["count"]) for e in hub.events] == [
        ("refused", "bad-socket-token", 1), ("refused", "bad-socket-token", 1)]


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_recording_holds_every_frame_sent(hub, rate):
    audio = speech_like(1.5, rate)
    hub.bind_links([{"action": "connect", "endpoint": [{"uri": hub.url(hub.base, "L1")}]}], "call-1")
    ws = open_socket(hub, rate)
    frames = to_frames(audio, rate)
    for frame in frames:
        ws.send(frame)
    ws.close()
    wait_closed(hub)
    rec = hub.recordings()[0]
    assert rec.rate == rate and rec.call_uuid == "call-1"
    assert rec.frames_received == len(frames) and rec.frames_malformed == 0
    np.testing.assert_array_equal(rec.samples[: audio.size], audio)
    connected = [e for e in hub.events if e.status == protocol.CONNECTED][0]
    assert connected.payload["caller"] == "447700900001" and connected.uuid == "call-1"


def test_a_burst_sent_with_the_hello_keeps_its_order_when_frames_skip_the_asgi_queue(hub):
    """The hello and the first second of frames leave the client in one go, so the server parses many of
    them in one read: those are queued as ASGI messages, and only once the endpoint has read them do frames
    go straight from the protocol to the session (limits.py `take_frames`). Every frame must be in the
    file once and in order, and a DTMF text message sent between frames must still arrive."""
    rate = 16000
    audio = speech_like(3.0, rate)
    frames = to_frames(audio, rate)
    hub.bind_links([{"action": "connect", "endpoint": [{"uri": hub.url(hub.base, "L1")}]}], "call-1")
    ws = connect(hub.url(hub.base, "L1"))
    with ws.send_context():  # websockets' documented way to write several messages at once
        ws.protocol.send_text(protocol.connected(content_type(rate), {"caller": "447700900001"}).encode())
        for frame in frames[:50]:
            ws.protocol.send_binary(frame)
        ws.socket.sendall(b"".join(ws.protocol.data_to_send()))  # one write: the server reads it in one go
    for frame in frames[50:100]:
        ws.send(frame)
    ws.send(protocol.dtmf("7"))
    for frame in frames[100:]:
        ws.send(frame)
    session = hub.session_for("call-1", timeout=5)
    ws.close()
    wait_closed(hub)
    rec = hub.recordings()[0]
    assert rec.frames_received == len(frames) and rec.frames_malformed == 0
    np.testing.assert_array_equal(rec.samples, audio[: len(frames) * (rate // 50)])
    assert [e.payload["digit"] for e in hub.events if e.status == protocol.DTMF] == ["7"]
    assert session.frames_direct, "frames still went through the ASGI queue"


def test_wrong_size_frames_counted_never_written(hub):
    ws = open_socket(hub, 16000)
    good = to_frames(speech_like(0.2, 16000), 16000)
    ws.send(good[0])
    ws.send(b"\x01\x02" * 100)  # 200 bytes: not 640
    ws.send(good[1] + b"\x00")  # one byte too many
    ws.send(good[2])
    ws.close()
    wait_closed(hub)
    rec = hub.recordings()[0]
    assert rec.frames_received == 2 and rec.frames_malformed == 2
    assert rec.samples.size == 2 * frame_bytes(16000) // 2
    assert any(e.status == "malformed-frame" and "640" in e.payload["reason"] for e in hub.events)


def test_bad_first_message_and_content_type_refused(hub):
    ws = connect(hub.url(hub.base))
    ws.send(json.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=44100"}))
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=2)
    assert any(e.status == "refused" and "44100" in e.payload["reason"] for e in hub.events)


def test_twenty_concurrent_calls_lose_nothing(hub):
    clips = {n: speech_like(2.0, 16000, seed=n) for n in range(20)}

    def one_call(n):
        hub.bind_links([{"endpoint": [{"uri": hub.url(hub.base, f"L{n}")}]}], f"call-{n}")
        ws = open_socket(hub, 16000, link=f"L{n}")
        for frame in to_frames(clips[n], 16000):
            ws.send(frame)
            time.sleep(0.002)
        ws.close()

    threads = [threading.Thread(target=one_call, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_closed(hub, 20)
    recordings = {r.call_uuid: r for r in hub.recordings()}
    assert len(recordings) == 20
    for n, clip in clips.items():
        rec = recordings[f"call-{n}"]
        assert rec.frames_malformed == 0
        np.testing.assert_array_equal(rec.samples[: clip.size], clip)


def test_audio_sent_back_is_paced_exact_frames(hub):
    ws = open_socket(hub, 16000, link="L1")
    hub.bind_links([{"endpoint": [{"uri": hub.url(hub.base, "L1")}]}], "call-1")
    session = hub.session_for("call-1", timeout=5)
    clip = speech_like(1.0, 16000)
    handle = session.play((clip, 16000))
    got, times = [], []
    while len(got) < 50:
        msg = ws.recv(timeout=5)
        times.append(time.monotonic())
        got.append(msg)
    assert all(isinstance(m, bytes) and len(m) == 640 for m in got)
    np.testing.assert_array_equal(np.frombuffer(b"".join(got), "<i2"), clip)
    assert handle.wait(5)
    # 50 frames took about a second of wall clock, not a burst
    assert times[-1] - times[0] > 0.7
    ws.close()


def test_dtmf_clear_and_notify(hub):
    ws = open_socket(hub, 16000, link="L1")
    hub.bind_links([{"endpoint": [{"uri": hub.url(hub.base, "L1")}]}], "call-1")
    session = hub.session_for("call-1", timeout=5)
    ws.send(protocol.dtmf("5"))
    hub.events.wait_for(protocol.DTMF, uuid="call-1", timeout=5)
    assert [e for e in hub.events if e.status == protocol.DTMF][0].payload["digit"] == "5"
    session.play((speech_like(5.0, 16000), 16000))
    time.sleep(0.1)
    dropped = session.clear()
    assert dropped > 100
    session.notify({"mark": "end"})
    texts = []
    deadline = time.monotonic() + 5
    while len(texts) < 2 and time.monotonic() < deadline:
        msg = ws.recv(timeout=5)
        if isinstance(msg, str):
            texts.append(json.loads(msg))
    assert texts == [{"action": "clear"}, {"action": "notify", "payload": {"mark": "end"}}]
    ws.close()


def test_stop_closes_open_sockets(tmp_path):
    events = EventLog()
    hub = SocketHub(events, folder=tmp_path)
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub)),
                          on_stop=hub.close_all).start()
    ws = open_socket(type("H", (), {"url": hub.url, "base": f"ws://127.0.0.1:{runner.port}"})())
    deadline = time.monotonic() + 5
    while not hub.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=3)
    assert not hub.sessions[0].open


CHILD = textwrap.dedent("""
    import sys, time
    from labkit.events import EventLog
    from labkit.server import ServerContext, ServerRunner, create_app
    from labkit.server.sockets import SocketHub
    events = EventLog()
    hub = SocketHub(events, folder=sys.argv[1])
    runner = ServerRunner(create_app(ServerContext(events=events, answer=lambda p: [], sockets=hub))).start()
    print(runner.port, hub.url("", "k"), flush=True)
    time.sleep(600)
""")


def test_recording_survives_sigkill(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port, path = child.stdout.readline().split()
        ws = connect(f"ws://127.0.0.1:{port}{path}")
        ws.send(protocol.connected(content_type(16000)))
        clip = speech_like(3.0, 16000)
        frames = to_frames(clip, 16000)
        sent = 100
        for frame in frames[:sent]:
            ws.send(frame)
        deadline = time.monotonic() + 10
        path = None
        while time.monotonic() < deadline:
            files = list(tmp_path.glob("*.wav"))
            if files:
                path = files[0]
                try:
                    with wave.open(str(path)) as w:
                        if w.getnframes() >= sent * 320:
                            break
                except (wave.Error, EOFError):
                    pass
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert data.size == sent * 320
    np.testing.assert_array_equal(data, clip[: sent * 320])


def test_a_socket_token_works_once_and_only_for_its_link(hub):
    from websockets.exceptions import InvalidStatus

    url = hub.url(hub.base, "L1")
    ws = connect(url)
    ws.close()
    with pytest.raises(InvalidStatus) as info:  # the same link and token again
        connect(url)
    assert info.value.response.status_code == 403
    other = hub.url(hub.base, "L2")
    with pytest.raises(InvalidStatus):  # a valid token, offered for another link
        connect(other.replace("link=L2", "link=L1"))


def test_each_handed_out_script_gets_its_own_token_tied_to_the_call(hub):
    from websockets.exceptions import InvalidStatus

    script = [{"action": "connect", "endpoint": [{"type": "websocket", "uri": hub.url(hub.base, "L1")}]},
              {"action": "connect", "endpoint": [{"type": "phone", "number": "447700900001"}]}]
    first, second = hub.issue(script, "call-1"), hub.issue(script, "call-2")
    uris = [first[0]["endpoint"][0]["uri"], second[0]["endpoint"][0]["uri"]]
    assert uris[0] != uris[1] and script[0]["endpoint"][0]["uri"] not in uris
    assert first[1] == script[1]  # other endpoints are left alone
    leaked = connect(uris[0])  # whoever uses a token first gets that call's socket...
    leaked.send(protocol.connected(content_type(16000)))
    with pytest.raises(InvalidStatus):  # ...once: a replay of the same answer is refused
        connect(uris[0])
    assert hub.session_for("call-1", timeout=5).call_uuid == "call-1"
    leaked.close()


def test_empty_connections_leave_no_files_and_no_sessions_in_memory(hub):
    for n in range(40):
        ws = open_socket(hub, link=f"E{n}")
        ws.close()
    deadline = time.monotonic() + 10
    while [s for s in hub.sessions if s.open] or len(hub.events.filter(kind="socket")) < 80:
        assert time.monotonic() < deadline, "the sessions did not close"
        time.sleep(0.02)
    assert not list(hub.folder.glob("*.wav")) and not hub.recordings()
    assert len(hub.sessions) <= SocketHub.RECENT


def test_recordings_stay_listed_after_their_sessions_leave_memory(hub):
    for n in range(SocketHub.RECENT + 4):
        hub.bind_links([{"endpoint": [{"uri": hub.url(hub.base, f"R{n}")}]}], f"call-{n}")
        ws = open_socket(hub, link=f"R{n}")
        ws.send(to_frames(speech_like(0.1, 16000, seed=n), 16000)[0])
        ws.close()
    wait_closed(hub, SocketHub.RECENT + 4)
    assert len(hub.sessions) == SocketHub.RECENT
    recordings = hub.recordings()
    assert [r.call_uuid for r in recordings] == [f"call-{n}" for n in range(SocketHub.RECENT + 4)]
    assert all(r.frames_received == 1 and r.samples.size == 320 for r in recordings)


def test_closing_while_frames_arrive_prints_no_traceback(hub, capfd):
    ws = open_socket(hub, link="busy")
    frame = to_frames(speech_like(0.02, 16000), 16000)[0]
    stop = threading.Event()

    def flood():
        try:
            while not stop.is_set():
                ws.send(frame)
        except ConnectionClosed:
            pass

    sender = threading.Thread(target=flood)
    sender.start()
    deadline = time.monotonic() + 10
    while not (hub.sessions and hub.sessions[-1].frames_received > 50):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hub.sessions[-1].close()
    stop.set()
    sender.join(10)
    wait_closed(hub)
    err = capfd.readouterr().err
    assert "AudioError" not in err and "Traceback" not in err
    assert hub.recordings()[0].frames_received == hub.sessions[-1].frames_received > 50


def test_an_unwritable_recording_folder_fails_the_recording_not_the_call(hub, tmp_path):
    hub.folder = tmp_path / "not-a-folder"
    hub.folder.write_text("a file where the folder should be")
    ws = open_socket(hub, link="nofolder")
    frames = to_frames(speech_like(0.2, 16000), 16000)
    for frame in frames:
        ws.send(frame)
    ws.send(protocol.dtmf("7"))  # the connection still works after the recording failed
    hub.events.wait_for(protocol.DTMF, timeout=5)
    ws.close()
    wait_until_closed = time.monotonic() + 10
    while any(s.open for s in hub.sessions):
        assert time.monotonic() < wait_until_closed
        time.sleep(0.02)
    failed = [e for e in hub.events if e.status == "recording-stopped"]
    assert len(failed) == 1 and "stopped" in failed[0].payload["reason"]
    assert hub.sessions[-1].frames_received == len(frames)
    assert hub.recordings() == []  # nothing was written, and listing does not fail over it
