"""Split recordings (`record` with `split: conversation, channels: 2`) carry each party on its own channel.

"audio spoken by the initial caller ... left channel", "audio heard by the initial caller ... right channel"
(vonage-platform.md section 4, [DOC-REC]). Against `labkit sandbox` as its own process: at 16 kHz a
virtual phone dials the application, says one melody while the app's NCCO streams another; at 8 kHz the
call goes to a WebSocket at 8 kHz that says the first melody while the NCCO streams the second. The
recording is downloaded from `recording_url` with the application's JWT and each channel is correlated
with what that party said. Issue 19: libsndfile's 16-bit stereo MP3 path used to put a buzz on both
channels (correlation 0.37).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jwt
import numpy as np
import pytest
import requests
import soundfile as sf
from support.sandbox import WsApp, best_correlation, wait_until
from support.sandbox_process import SandboxProcess

SPEED = 10


def melody(seed: int, rate: int, seconds: float = 2.0) -> np.ndarray:
    """A pattern of random notes (speech band, 60 ms each) that correlates with nothing else."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    notes = np.repeat(rng.uniform(250, min(3000, rate / 2 - 500), n // int(0.06 * rate) + 1), int(0.06 * rate))[:n]
    audio = 0.35 * np.sin(2 * np.pi * np.cumsum(notes) / rate)
    return np.rint(audio * 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class App:
    """The user's app: answers inbound calls with the NCCO set for the caller, serves audio, takes events."""

    def __init__(self) -> None:
        self.nccos: dict[str, list] = {}  # caller number -> NCCO
        self.files: dict[str, bytes] = {}
        self.records: list[dict] = []
        self.cv = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = urlsplit(self.path).path
                if path == "/answer":
                    caller = dict(parse_qsl(urlsplit(self.path).query)).get("from", "")
                    self._send(200, json.dumps(outer.nccos.get(caller, [])).encode(), "application/json")
                elif path.lstrip("/") in outer.files:
                    self._send(200, outer.files[path.lstrip("/")], "audio/wav")
                else:
                    self._send(404, b"", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if urlsplit(self.path).path == "/rec":
                    with outer.cv:
                        outer.records.append(body)
                        outer.cv.notify_all()
                self._send(200, b"", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record_event(self, conversation_uuid: str, timeout: float = 30.0) -> dict:
        with self.cv:
            assert self.cv.wait_for(lambda: any(r.get("conversation_uuid") == conversation_uuid
                                                for r in self.records), timeout), "no record event"
            return next(r for r in self.records if r.get("conversation_uuid") == conversation_uuid)


@pytest.fixture(scope="module")
def app():
    server = App()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def sb(tmp_path_factory, app):
    proc = SandboxProcess(tmp_path_factory.mktemp("split-home"), "--answer-url", f"{app.url}/answer",
                          "--event-url", f"{app.url}/event", speed=SPEED)
    yield proc
    proc.stop()


def bearer(sb: SandboxProcess) -> dict:
    now = int(time.time())
    claims = {"application_id": sb.rows["application id"], "iat": now, "exp": now + 600, "jti": str(uuidlib.uuid4())}
    key = (sb.home / "private.key").read_bytes()
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='RS256')}"}


def download(sb: SandboxProcess, event: dict) -> tuple[np.ndarray, int]:
    got = requests.get(event["recording_url"], headers=bearer(sb), verify=sb.ca, timeout=10)
    assert got.status_code == 200 and len(got.content) == event["size"]
    data, rate = sf.read(io.BytesIO(got.content), dtype="int16")  # one whole-file read (stack notes, VBR)
    return data, rate


def record_ncco(app: App, fmt: str, heard_file: str) -> list:
    return [{"action": "record", "split": "conversation", "channels": 2, "format": fmt,
             "eventUrl": [f"{app.url}/rec"]},
            {"action": "stream", "streamUrl": [f"{app.url}/{heard_file}"]}]


def assert_channels(data: np.ndarray, said: np.ndarray, heard: np.ndarray) -> None:
    assert data.ndim == 2 and data.shape[1] == 2, data.shape
    left = best_correlation(data[:, 0], said)[0]
    right = best_correlation(data[:, 1], heard)[0]
    assert left >= 0.99 and right >= 0.99, f"left {left:.4f} (what the caller said), right {right:.4f} (heard)"
    crossed = best_correlation(data[:, 0], heard)[0], best_correlation(data[:, 1], said)[0]
    assert max(crossed) < 0.3, f"a party leaked onto the other channel: {crossed}"


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_phone_call_recorded_split_at_16_khz(sb, app, fmt):
    rate = 16000
    caller = {"mp3": "447700900611", "wav": "447700900612"}[fmt]
    said, heard = melody(1, rate), melody(2, rate, 3.0)  # the call ends with the stream, after the speech
    app.files[f"heard-{fmt}.wav"] = wav_bytes(heard, rate)
    app.nccos[caller] = record_ncco(app, fmt, f"heard-{fmt}.wav")
    control = f"{sb.url}/_labkit/phones"
    requests.post(control, json={"number": caller, "answer_after": 0}, verify=sb.ca,
                  timeout=10).raise_for_status()
    # half a second of silence first: speech said before the record action runs is not in it (as on Vonage)
    spoken = np.concatenate([np.zeros(rate // 2, np.int16), said])
    requests.post(f"{control}/{caller}/say", data=wav_bytes(spoken, rate), headers={"Content-Type": "audio/wav"},
                  verify=sb.ca, timeout=10).raise_for_status()
    call = requests.post(f"{control}/{caller}/dial", json={}, verify=sb.ca, timeout=10).json()
    event = app.record_event(call["conversation_uuid"])
    data, got_rate = download(sb, event)
    assert got_rate == rate
    assert_channels(data, said, heard)


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_websocket_call_recorded_split_at_8_khz(sb, app, fmt):
    """An outbound call to a WebSocket at 8 kHz runs the NCCO on that leg: the recording is at its rate."""
    rate = 8000
    said, heard = melody(3, rate), melody(4, rate, 3.0)
    app.files[f"heard8-{fmt}.wav"] = wav_bytes(heard, rate)
    ws = WsApp().start()
    try:
        r = requests.post(f"{sb.url}/v1/calls", headers=bearer(sb), verify=sb.ca, timeout=10, json={
            "to": [{"type": "websocket", "uri": ws.uri, "content-type": "audio/l16;rate=8000"}],
            "from": {"type": "phone", "number": sb.rows["number"]},
            "ncco": record_ncco(app, fmt, f"heard8-{fmt}.wav")})
        assert r.status_code == 201, r.text
        created = r.json()
        assert wait_until(lambda: ws.connection is not None and len(ws.frames) >= 25, 20)  # 0.5 s of call heard
        frame = rate // 50
        for start in range(0, said.size, frame):  # faster than real time: the platform buffers it [NDP]
            ws.connection.send(said[start:start + frame].tobytes())
        event = app.record_event(created["conversation_uuid"])
    finally:
        ws.stop()
    data, got_rate = download(sb, event)
    assert got_rate == rate
    assert_channels(data, said, heard)


def test_the_mp3_encoder_keeps_16_bit_stereo_intact(tmp_path: Path):
    """The workaround itself, at both rates (the sandbox writes recordings through `mp3_input`)."""
    from labkit.sandbox.engine.recordings import mp3_input

    for rate in (8000, 16000):
        stereo = np.stack([melody(5, rate), melody(6, rate)], axis=1)
        path = tmp_path / f"split-{rate}.mp3"
        sf.write(str(path), mp3_input(stereo), rate, format="MP3", bitrate_mode="CONSTANT")
        data, _ = sf.read(str(path), dtype="int16")
        assert_channels(data, stereo[:, 0], stereo[:, 1])
