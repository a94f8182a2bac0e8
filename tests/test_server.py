"""The webhook server on its own: lifecycle and ports, Host check, audio files, webhooks, signatures."""

import socket
import threading

import pytest
import requests

from labkit.errors import PortInUseError
from labkit.events import EventLog
from labkit.server import ServerContext, ServerRunner, create_app


@pytest.fixture
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "tone.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    (folder / "song.mp3").write_bytes(b"ID3" + b"\x00" * 500)
    (tmp_path / "secret.txt").write_text("do not serve")
    return folder


@pytest.fixture
def served(audio_dir):
    ctx = ServerContext(events=EventLog(), answer=lambda p: [{"action": "talk", "text": f"hi {p.get('from')}"}],
                        audio_dirs=[audio_dir])
    runner = ServerRunner(create_app(ctx)).start()
    yield ctx, runner
    runner.stop()


def test_start_stop_restart_frees_the_port(audio_dir):
    ctx = ServerContext(events=EventLog(), answer=lambda p: [])
    first = ServerRunner(create_app(ctx)).start()
    port = first.port
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["ok"] is True
    first.stop()
    first.stop()  # idempotent
    assert not any(t.name == f"labkit-server:{port}" for t in threading.enumerate())
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    again = ServerRunner(create_app(ctx), port=port).start()  # same port, right after a clean stop
    assert again.port == port
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    again.stop()


def test_busy_port_gives_clear_error_or_next_port():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    try:
        ctx = ServerContext(events=EventLog(), answer=lambda p: [])
        with pytest.raises(PortInUseError, match=f"Port {busy}.*in use"):
            ServerRunner(create_app(ctx), port=busy, fallback=0).start()
        runner = ServerRunner(create_app(ctx), port=busy, fallback=5).start()
        try:
            assert runner.port != busy and f"port {busy} was busy" in runner.note
        finally:
            runner.stop()
    finally:
        blocker.close()


def test_host_header_check(served):
    ctx, runner = served
    url = f"http://127.0.0.1:{runner.port}/healthz"
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url, headers={"Host": f"localhost:{runner.port}"}, timeout=5).status_code == 200
    evil = requests.get(url, headers={"Host": "attacker.example"}, timeout=5)
    assert evil.status_code == 403 and "not allowed" in evil.text
    ctx.allowed_hosts.add("abc.tunnel.test")
    assert requests.get(url, headers={"Host": "abc.tunnel.test"}, timeout=5).status_code == 200


@pytest.mark.parametrize("path", ["../secret.txt", "..%2fsecret.txt", "%2e%2e/secret.txt", "sub/../../secret.txt",
                                  "/etc/passwd", "..\\secret.txt"])
def test_no_path_traversal(served, path):
    _, runner = served
    r = requests.get(f"http://127.0.0.1:{runner.port}/audio/{path}", timeout=5)
    assert r.status_code == 404 and "do not serve" not in r.text


def test_audio_types_and_clear_404(served):
    _, runner = served
    base = f"http://127.0.0.1:{runner.port}/audio/"
    assert requests.get(base + "tone.wav", timeout=5).headers["Content-Type"] == "audio/wav"
    assert requests.get(base + "song.mp3", timeout=5).headers["Content-Type"] == "audio/mpeg"
    missing = requests.get(base + "nope.mp3", timeout=5)
    assert missing.status_code == 404 and "song.mp3" in missing.text and "tone.wav" in missing.text


def test_range_requests(served, audio_dir):
    _, runner = served
    data = (audio_dir / "tone.wav").read_bytes()
    r = requests.get(f"http://127.0.0.1:{runner.port}/audio/tone.wav", headers={"Range": "bytes=4-19"}, timeout=5)
    assert r.status_code == 206
    assert r.content == data[4:20]
    assert r.headers["Content-Range"] == f"bytes 4-19/{len(data)}"


def test_answer_and_event_webhooks_reach_the_log(served):
    ctx, runner = served
    base = f"http://127.0.0.1:{runner.port}/webhooks/"
    r = requests.get(base + "answer", params={"from": "447700900001", "uuid": "u1"}, timeout=5)
    assert r.json() == [{"action": "talk", "text": "hi 447700900001"}]
    assert requests.post(base + "event", json={"uuid": "u1", "status": "answered"}, timeout=5).status_code == 204
    assert [e.status for e in ctx.events] == ["answer", "answered"]


def test_instruction_event_can_return_ncco(served):
    ctx, runner = served
    ctx.instruction = lambda p: [{"action": "talk", "text": "you pressed " + p["dtmf"]["digits"]}] if "dtmf" in p \
        else None
    r = requests.post(f"http://127.0.0.1:{runner.port}/webhooks/event",
                      json={"uuid": "u1", "dtmf": {"digits": "42", "timed_out": False}}, timeout=5)
    assert r.json()[0]["text"] == "you pressed 42"


def test_failing_answer_handler_is_reported_not_hidden(served):
    ctx, runner = served

    def broken(payload):
        raise KeyError("caller")

    ctx.answer = broken
    r = requests.get(f"http://127.0.0.1:{runner.port}/webhooks/answer", params={"uuid": "u9"}, timeout=5)
    assert r.status_code == 500
    errors = [e for e in ctx.events if e.status == "answer-handler-error"]
    assert errors and "KeyError" in errors[0].payload["reason"] and errors[0].uuid == "u9"


class TestSignedWebhooks:
    SECRET = "lab-signature-secret-0123456789-abcdefgh"

    @pytest.fixture
    def signed(self, served):
        ctx, runner = served
        ctx.signature_secret = self.SECRET
        return ctx, f"http://127.0.0.1:{runner.port}/webhooks/event"

    def post(self, url, body: bytes, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(url, data=body, headers=headers, timeout=5)

    def test_correctly_signed_is_accepted(self, signed):
        from labkit.server.signing import sign_webhook

        ctx, url = signed
        body = b'{"uuid": "u1", "status": "answered"}'
        assert self.post(url, body, sign_webhook(body, self.SECRET)).status_code == 204
        assert ctx.events[-1].status == "answered"

    def test_refused_when_unsigned_wrong_secret_expired_or_tampered(self, signed):
        from labkit.server.signing import sign_webhook

        ctx, url = signed
        body = b'{"uuid": "u1", "status": "answered"}'
        assert self.post(url, body).status_code == 401
        assert self.post(url, body, sign_webhook(body, "another-secret-0123456789-abcdefghijkl")).status_code == 401
        assert self.post(url, body, sign_webhook(body, self.SECRET, now=1_000_000, ttl=60)).status_code == 401
        tampered = b'{"uuid": "u1", "status": "completed"}'
        assert self.post(url, tampered, sign_webhook(body, self.SECRET)).status_code == 401
        assert not [e for e in ctx.events if e.kind == "event"]
        assert len([e for e in ctx.events if e.status == "refused"]) == 4
