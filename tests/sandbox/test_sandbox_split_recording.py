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
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from support.sandbox import WsApp, best_correlation, wait_until
from support.sandbox_process import SandboxProcess
from support.webhook_app import WebhookApp

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


def record_event(app: WebhookApp, conversation_uuid: str) -> dict:
    return app.wait_for(lambda h: h.path == "/rec" and h.fields.get("conversation_uuid") == conversation_uuid).fields


def download(sb: SandboxProcess, event: dict) -> tuple[np.ndarray, int]:
    got = requests.get(event["recording_url"], headers=sb.bearer(), verify=sb.ca, timeout=10)
    assert got.status_code == 200 and len(got.content) == event["size"]
    data, rate = sf.read(io.BytesIO(got.content), dtype="int16")  # one whole-file read (stack notes, VBR)
    return data, rate


def record_ncco(app: WebhookApp, fmt: str, heard_file: str) -> list:
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
    event = record_event(app, call["conversation_uuid"])
    data, got_rate = download(sb, event)
    assert got_rate == rate
    assert_channels(data, said, heard)


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_websocket_call_recorded_split_at_8_khz(sb, app, fmt):
    """An outbound call to a WebSocket at 8 kHz runs the NCCO on that leg: the recording is at its rate."""
    rate = 8000
    # The call ends with the stream. This test sends its 2 s of speech in real time while the call runs at
    # speed 10, so the stream must outlast 0.5 s (waited for) + 2 s by more than a loaded machine delays
    # the sends: 3 s left 50 ms of real time, and once the call ended first (left channel 0.04); 8 s
    # leaves 0.55 s.
    said, heard = melody(3, rate), melody(4, rate, 8.0)
    app.files[f"heard8-{fmt}.wav"] = wav_bytes(heard, rate)
    ws = WsApp().start()
    try:
        r = requests.post(f"{sb.url}/v1/calls", headers=sb.bearer(), verify=sb.ca, timeout=10, json={
            "to": [{"type": "websocket", "uri": ws.uri, "content-type": "audio/l16;rate=8000"}],
            "from": {"type": "phone", "number": sb.rows["number"]},
            "ncco": record_ncco(app, fmt, f"heard8-{fmt}.wav")})
        assert r.status_code == 201, r.text
        created = r.json()
        assert wait_until(lambda: ws.connection is not None and len(ws.frames) >= 25, 20)  # 0.5 s of call heard
        frame = rate // 50
        for start in range(0, said.size, frame):  # faster than real time: the platform buffers it [NDP]
            ws.connection.send(said[start:start + frame].tobytes())
        event = record_event(app, created["conversation_uuid"])
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
