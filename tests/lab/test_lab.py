"""The Lab facade in sandbox mode: idempotent start (also after reload), clean stop, calls, errors."""

import importlib
import socket
import threading
import time

import pytest
import requests

import labkit
from labkit.errors import AudioError, CallEndedError, CallNotAnsweredError, InvalidInput


def test_start_is_idempotent_and_survives_reload(lab):
    from labkit import Lab

    assert Lab.start() is lab
    import labkit.lab.facade as lab_module

    reloaded = importlib.reload(lab_module)
    assert reloaded.Lab.start() is lab
    importlib.reload(labkit)
    assert labkit.Lab.start() is lab
    assert sum(t.name == "labkit-lab" for t in threading.enumerate()) == 1


def test_outbound_call_default_script_and_control(lab):
    call = lab.call("447700900101")
    call.wait_for("answered", timeout=10)
    assert call.info().status == "answered"
    call.say("Testing one two")
    call.stream("music.mp3", loop=0, level=0.2)
    call.stop_stream()
    call.dtmf("12#")
    call.mute()
    call.unmute()
    call.earmuff()
    call.unearmuff()
    call.hangup()
    call.wait_for("completed", timeout=10)
    statuses = call.events.filter(kind="event").statuses()
    assert statuses[:3] == ["started", "ringing", "answered"] and statuses[-1] == "completed"


def test_control_before_answer_and_after_end_are_explained(lab):
    phone = lab.phone("447700900102")
    phone.set(answer_after=30)
    call = lab.call("447700900102")
    call.wait_for("ringing", timeout=10)
    with pytest.raises(CallNotAnsweredError, match="not answered yet"):
        call.stream("music.mp3")
    call.hangup()
    lab.events.wait_for(lambda e: e.status in ("cancelled", "completed", "unanswered", "timeout"),
                        uuid=call.uuid, timeout=10)
    with pytest.raises(CallEndedError, match="already over"):
        call.say("anyone there?")
    phone.set(answer_after=1)


def test_audio_urls_and_errors(lab):
    url = lab.audio_url("music.mp3")
    assert url.startswith(lab.public_url) and url.endswith("/audio/music.mp3")
    assert requests.get(url, timeout=5).headers["Content-Type"] == "audio/mpeg"
    assert lab.audio_url("https://cdn.test/x.mp3") == "https://cdn.test/x.mp3"
    with pytest.raises(AudioError, match="Available: .*music.mp3"):
        lab.audio_url("nope.mp3")
    with pytest.raises(InvalidInput, match="E.164"):
        lab.call("0770090")


def test_inbound_call_reaches_answer_handler(fresh):
    lab = fresh
    seen = {}

    @lab.on_answer
    def answer(fields):
        seen.update(fields)
        return [labkit.lab.ncco.talk("Welcome")]

    lab.sandbox.dial("447700900103")
    call = lab.wait_for_call(timeout=10)
    assert call.direction == "inbound" and call.to == "447700900103"
    assert seen["from"] == "447700900103" and seen["to"] == lab.number
    assert seen["uuid"] == call.uuid and seen["conversation_uuid"]
    call.wait_for("completed", timeout=20)


def test_stop_frees_port_and_threads(tmp_path, monkeypatch):
    """A second, private lab (the shared one keeps running): stop closes everything it opened."""
    from labkit.lab.facade import Lab, running_lab

    shared = running_lab()
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    # bypass the registry so that a second lab can start beside the shared one
    other = Lab(labkit.config.Settings.load(environ={"LABKIT_MODE": "sandbox"}), quiet=True)
    other._start()
    port, sandbox_port = other.port, int(other.sandbox.api_host.rsplit(":", 1)[1])
    other.stop()
    other.stop()
    for p in (port, sandbox_port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # would raise if anything still listened
    assert running_lab() is shared


def test_wrong_credentials_are_explained(lab, tmp_path):
    """A key that is not the application's: the sandbox answers 401, the lab says what to check."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from vonage_http_client import Auth, HttpClientOptions

    from labkit.errors import AuthenticationError
    from labkit.lab.startup import voice_client

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    good = lab._voice
    lab._voice = voice_client(Auth(application_id=lab.sandbox.application_id, private_key=other),
                              HttpClientOptions(api_host=lab.sandbox.api_host, timeout=10))
    try:
        with pytest.raises(AuthenticationError, match="401.*VONAGE_PRIVATE_KEY"):
            lab.call("447700900104")
    finally:
        lab._voice = good


def test_record_action_and_download(fresh):
    """A record NCCO: its event reaches the lab and the file downloads as a Recording of what was said."""
    from vonage_voice import Record

    lab = fresh
    phone = lab.phone("447700900105")
    call = lab.call("447700900105", ncco=[Record(format="wav", endOnKey="#"), labkit.lab.ncco.keep_open(lab)])
    call.wait_for("answered", timeout=10)
    phone.say(lab.audio_path("prompt.wav"))
    while phone.speaking:
        time.sleep(0.05)
    phone.press("#")
    event = call.wait_for("record", timeout=10)
    rec = lab.download_recording(event)
    call.hangup()
    assert rec.path.suffix == ".wav" and rec.duration > 1.5
    assert rec.correlate(labkit.media.Recording(lab.audio_path("prompt.wav")).segment(0.2, 1.9)) > 0.9
    with pytest.raises(labkit.errors.CallError, match="no such recording"):
        lab.download_recording(event.payload["recording_url"] + "x")


def test_unplayable_audio_is_refused_before_sending(lab, tmp_path):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "more-audio"
    folder.mkdir()
    sf.write(folder / "float.wav", np.zeros(1600, np.float32), 16000, subtype="FLOAT")
    (folder / "notes.txt").write_text("not audio")
    lab.add_audio_dir(folder)
    try:
        with pytest.raises(AudioError, match="float.wav cannot be streamed.*32-bit float"):
            lab.audio_url("float.wav")
        with pytest.raises(AudioError, match="notes.txt cannot be streamed"):
            lab.audio_url("notes.txt")
    finally:
        lab.audio_dirs.remove(folder.resolve())


@pytest.mark.parametrize("kwargs", [{"mode": "bogus"}, {"speed": -1}, {"speed": "fast"}, {"port": "abc"},
                                    {"port": -5}, {"port": 70000}])
def test_bad_start_arguments_leave_the_running_lab_alone(lab, kwargs):
    from labkit import Lab

    call = lab.call("447700900106")
    call.wait_for("answered", timeout=10)
    with pytest.raises(InvalidInput):
        Lab.start(**kwargs)
    assert not lab.stopped and Lab.start() is lab
    assert call.info().status == "answered"  # its call goes on
    call.hangup()


@pytest.mark.parametrize("kwargs,words", [
    ({"ncco": 42}, "list of actions"), ({"ncco": []}, "empty NCCO"), ({"ncco": [{"action": "talk", "t": {1}}]}, "JSON"),
    ({"ncco": [{"action": "talk", "text": "hi", "loop": -1}]}, "loop"),
    ({"answer_url": "ftp://x/y"}, "http"), ({"event_url": "file:///etc/passwd"}, "http"),
])
def test_bad_call_arguments_are_refused_before_the_call_is_placed(lab, kwargs, words):
    placed = len(lab.sandbox.calls)
    before = len(lab.calls)
    with pytest.raises(InvalidInput, match=words):
        lab.call("447700900107", **kwargs)
    assert len(lab.calls) == before and len(lab.sandbox.calls) == placed


def test_an_empty_wav_is_refused(lab, tmp_path):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "empty-audio"
    folder.mkdir()
    sf.write(folder / "empty.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    lab.add_audio_dir(folder)
    try:
        with pytest.raises(AudioError, match="no samples"):
            lab.audio_url("empty.wav")
        from labkit.media.pacer import PacedSender

        sender = PacedSender(lambda frame: None, 16000)
        try:
            with pytest.raises(AudioError, match="no samples"):
                sender.play(folder / "empty.wav")  # what lab.socket(call).play(...) does with it
        finally:
            sender.close()
    finally:
        lab.audio_dirs.remove(folder.resolve())


def test_an_interrupted_stop_is_finished_by_the_next_call(tmp_path, monkeypatch):
    """Ctrl-C while stop() waits for the server: the port and thread stay up until stop() is called again."""
    from labkit.lab.facade import Lab, running_lab

    shared = running_lab()
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    other = Lab(labkit.config.Settings.load(environ={"LABKIT_MODE": "sandbox"}), quiet=True)
    other._start()
    port = other.port
    runner = other.runner
    real_close = runner.on_stop  # closes the WebSockets, first thing in the runner's stop

    def close_then_interrupt():
        real_close()
        raise KeyboardInterrupt  # arrives while the server still serves, before the socket is closed

    runner.on_stop = close_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        other.stop()
    assert not other.stopped and runner.running
    runner.on_stop = real_close
    other.stop()
    assert other.stopped
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # freed by the second call
    assert not any(t.name == f"labkit-server:{port}" for t in threading.enumerate())
    assert running_lab() is shared


def test_an_outbound_calls_early_answer_webhook_is_not_taken_for_an_inbound_call(fresh):
    """The answer webhook of a call the lab places can beat lab.call()'s REST reply (a phone answering at
    once); only calls to the lab's own number are inbound."""
    lab = fresh
    before = dict(lab.calls)
    lab._senders.add(lab.number)  # as lab.call() does before placing a call
    lab._on_answer_webhook({"uuid": "early-outbound", "conversation_uuid": "CON-x", "from": lab.number,
                            "to": "447700900108"})
    assert "early-outbound" not in lab.calls
    lab._on_answer_webhook({"uuid": "real-inbound", "conversation_uuid": "CON-y", "from": "447700900109",
                            "to": lab.number})
    assert lab.calls["real-inbound"].direction == "inbound"
    lab.calls.clear()
    lab.calls.update(before)
