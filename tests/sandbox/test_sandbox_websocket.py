"""WebSocket legs: the sandbox dials a `websockets` server like Vonage does and streams 20 ms L16 frames."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soundfile as sf
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, client, test_audio
from support.sandbox import WsApp, rms, wait_until
from vonage_voice import CreateCallRequest, Phone, Talk, Websocket

HEADERS = {"caller-id": "447700900123", "language": "en-GB"}


def tone(freq: float, seconds: float, rate: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.rint(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def band_power(x: np.ndarray, freq: float, rate: int = 16000) -> float:
    x = np.asarray(x, dtype=np.float64)
    if not x.size or not np.any(x):
        return 0.0
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spec[np.abs(f - freq) < 20].sum() / spec.sum())


def connect_ncco(app: WsApp, rate: int = 16000, **extra) -> list:
    return [{"action": "connect", **extra,
             "endpoint": [{"type": "websocket", "uri": app.uri, "content-type": f"audio/l16;rate={rate}",
                           "headers": HEADERS}]}]


def dial_into(sandbox, receiver, app, number, rate=16000, **extra):
    receiver.answer_ncco = connect_ncco(app, rate, **extra)
    leg = sandbox.dial(number)
    app.wait_text(lambda t: t.get("event") == "websocket:connected")
    return leg, sandbox.phone(number)


@pytest.fixture
def ws_app():
    app = WsApp().start()
    yield app
    app.stop()


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_phone_audio_reaches_the_websocket_sample_for_sample(sandbox, receiver, ws_app, tmp_path, rate):
    leg, phone = dial_into(sandbox, receiver, ws_app, "447700900501", rate)
    hello = ws_app.texts[0]
    assert hello == {"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}", **HEADERS}
    assert "headers" not in hello
    rng = np.random.default_rng(rate)
    speech = rng.integers(-20000, 20000, int(1.5 * rate)).astype(np.int16)
    speech[0] = 12345
    path = tmp_path / f"speech-{rate}.wav"
    sf.write(str(path), speech, rate, subtype="PCM_16")
    phone.say(path)
    frames = rate // 50
    ws_app.wait_frames(int(2.5 * 50))
    assert wait_until(lambda: np.count_nonzero(ws_app.audio()) >= speech.size - 10 and not phone.speaking)
    time.sleep(0.05)
    assert {len(f) for f in ws_app.frames} == {frames * 2}
    got = ws_app.audio()
    start = int(np.flatnonzero(got)[0])
    assert np.array_equal(got[start: start + speech.size], speech)
    assert not np.any(got[:start]) and not np.any(got[start + speech.size: start + speech.size + frames])
    phone.hangup()
    assert ws_app.closed.wait(5)
    assert leg.wait("completed", 5)


def test_audio_from_the_app_is_heard_with_clear_and_notify(sandbox, receiver, ws_app):
    leg, phone = dial_into(sandbox, receiver, ws_app, "447700900502", 16000)
    ws = ws_app.connection
    burst = tone(600, 2.0, 16000)
    mark = phone.position
    for i in range(0, burst.size, 320):  # 2 s sent at once: the platform buffers and plays it in real time
        ws.send(burst[i:i + 320].astype("<i2").tobytes())
    ws.send(json.dumps({"action": "notify", "payload": {"step": "greeting done"}}))
    reply = ws_app.wait_text(lambda t: t.get("event") == "websocket:notify", timeout=5)
    assert reply == {"event": "websocket:notify", "payload": {"step": "greeting done"}}
    played = phone.position - mark
    # answered only once the queued audio had played (the notify goes out in the tick that takes the last
    # frame, which the phone's count may show a tick or two later: seen 1.98 s under load). The upper bound
    # only says it was not held back for long: the test reads the phone's position after the reply reached
    # it, which a loaded machine delayed to 3.92 s once.
    assert 2.0 * 16000 - 2 * 320 <= played < 5.0 * 16000
    heard = phone.heard_since(mark).samples
    assert band_power(heard[: 2 * 16000], 600) > 0.9

    long = tone(900, 10.0, 16000)
    for i in range(0, long.size, 320):
        ws.send(long[i:i + 320].astype("<i2").tobytes())
    assert wait_until(lambda: phone.position > mark + 3 * 16000)
    ws.send(json.dumps({"action": "clear"}))
    ws_app.wait_text(lambda t: t.get("event") == "websocket:cleared", timeout=5)
    after = phone.position
    assert wait_until(lambda: phone.position > after + 16000)
    assert rms(phone.heard_since(after + 1600).samples) < 1  # nothing left to play
    assert leg.status == "answered"
    phone.hangup()


def test_key_presses_are_forwarded_and_the_buffer_is_bounded(sandbox, receiver, ws_app):
    leg, phone = dial_into(sandbox, receiver, ws_app, "447700900503", 8000)
    phone.press("5#")
    ws_app.wait_text(lambda t: t.get("digit") == "#", timeout=5)
    dtmf = [t for t in ws_app.texts if t.get("event") == "websocket:dtmf"]
    assert dtmf == [{"event": "websocket:dtmf", "digit": "5", "duration": 260},
                    {"event": "websocket:dtmf", "digit": "#", "duration": 260}]
    ws_leg = next(c for c in sandbox.calls if c.parent is leg)
    frame = bytes(320)
    ws_app.connection.send(frame[:100])  # a malformed (short) message is counted
    for _ in range(4000):
        ws_app.connection.send(frame)
    assert wait_until(lambda: ws_leg.endpoint.frames_received >= 4001)
    dropped = ws_leg.endpoint.frames_dropped
    assert 600 < dropped <= 4000 - 3072
    assert ws_leg.endpoint.messages_malformed == 1
    phone.hangup()


def test_app_closing_the_socket_posts_disconnected_whose_ncco_runs(sandbox, receiver, ws_app):
    receiver.replies["disconnected"] = [{"action": "talk", "text": "The assistant has left the call, goodbye"}]
    leg, phone = dial_into(sandbox, receiver, ws_app, "447700900504", 16000, eventType="synchronous",
                           eventUrl=[receiver.url + "/ws-event"])
    connected = receiver.wait_for("answered", path="/ws-event")
    ws_uuid = connected.payload["uuid"]
    assert connected.payload["to"] == ws_app.uri
    mark = phone.position
    ws_app.connection.close()
    hook = receiver.wait_for("disconnected", path="/ws-event")
    assert hook.payload["uuid"] == ws_uuid and hook.payload["headers"] == HEADERS
    assert hook.payload["conversation_uuid"] == leg.conversation_uuid
    receiver.wait_for("completed", leg.uuid, timeout=10)
    statuses = [h.kind for h in receiver.find(path="/ws-event")]
    assert statuses == ["started", "ringing", "answered", "disconnected", "completed"]
    assert rms(phone.heard_since(mark).samples) > 500  # the talk from the reply NCCO was played


def test_phone_hangup_closes_the_socket_and_rest_hangup_of_the_ws_leg_is_quiet(sandbox, receiver, client, ws_app):
    leg, phone = dial_into(sandbox, receiver, ws_app, "447700900505", 16000,
                           eventUrl=[receiver.url + "/ws-event"])
    ws_uuid = receiver.wait_for("answered", path="/ws-event").payload["uuid"]
    client.voice.hangup(ws_uuid)
    assert ws_app.closed.wait(5)
    receiver.wait_for("completed", ws_uuid)
    assert not receiver.find("disconnected")
    receiver.wait_for("completed", leg.uuid)  # the NCCO ran out after the connect

    second = WsApp().start()
    try:
        leg, phone = dial_into(sandbox, receiver, second, "447700900506", 16000)
        phone.hangup()
        assert second.closed.wait(5)
        assert leg.wait("completed", 5)
    finally:
        second.stop()


def test_outbound_call_to_a_websocket_endpoint(sandbox, client, receiver, ws_app):
    created = client.voice.create_call(CreateCallRequest(
        to=[Websocket(uri=ws_app.uri, content_type="audio/l16;rate=16000", headers={"bot": "1"})],
        from_=Phone(number=sandbox.number), ncco=[Talk(text="Hello robot, here is your prompt")]))
    ws_app.wait_text(lambda t: t.get("event") == "websocket:connected")
    assert ws_app.texts[0]["bot"] == "1"
    receiver.wait_for("completed", created.uuid, timeout=10)
    assert ws_app.closed.wait(5)
    assert rms(ws_app.audio()) > 300  # the talk was streamed to the socket
    info = client.voice.get_call(created.uuid)
    assert info.to.uri == ws_app.uri


def test_unreachable_websocket_fails_the_leg(sandbox, receiver):
    receiver.answer_ncco = [{"action": "connect", "eventUrl": [receiver.url + "/ws-event"],
                             "endpoint": [{"type": "websocket", "uri": "ws://127.0.0.1:9/socket",
                                           "content-type": "audio/l16;rate=16000"}]},
                            {"action": "talk", "text": "Sorry, the assistant is unavailable"}]
    leg = sandbox.dial("447700900507")
    receiver.wait_for("failed", path="/ws-event")
    receiver.wait_for("completed", leg.uuid)
    ws_leg = next(c for c in sandbox.calls if c.parent is leg)
    assert ws_leg.status == "failed" and ws_leg.errors


def test_websocket_authorization_headers(sandbox, receiver, ws_app):
    import jwt

    receiver.answer_ncco = [{"action": "connect", "endpoint": [{
        "type": "websocket", "uri": ws_app.uri, "content-type": "audio/l16;rate=16000",
        "authorization": {"type": "custom", "value": "Token abc123"}}]}]
    leg = sandbox.dial("447700900508")
    ws_app.wait_text(lambda t: t.get("event") == "websocket:connected")
    assert ws_app.request_headers["authorization"] == "Token abc123"
    sandbox.phone("447700900508").hangup()
    assert leg.wait("completed", 5)

    secret = "sandbox-signature-secret-0123456789"
    sandbox.configure(signature_secret=secret)
    second = WsApp().start()
    try:
        receiver.answer_ncco = [{"action": "connect", "endpoint": [{
            "type": "websocket", "uri": second.uri, "content-type": "audio/l16;rate=16000",
            "authorization": {"type": "vonage"}}]}]
        sandbox.dial("447700900509")
        second.wait_text(lambda t: t.get("event") == "websocket:connected")
        token = second.request_headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        assert claims["iss"] == "Vonage" and claims["application_id"] == sandbox.application_id
        sandbox.phone("447700900509").hangup()
    finally:
        second.stop()
