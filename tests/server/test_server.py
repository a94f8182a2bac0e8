"""The webhook server on its own: lifecycle and ports, Host check, audio files, webhooks, signatures."""

import json
import socket
import threading

import pytest
import requests
from support.server import audio_folder, serving

from labkit.errors import PortInUseError
from labkit.events import EventLog
from labkit.server import ServerContext, ServerRunner, create_app


@pytest.fixture
def audio_dir(tmp_path):
    return audio_folder(tmp_path)


@pytest.fixture
def served(audio_dir):
    with serving(audio_dir) as both:
        yield both


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
    """Tokens built here the way Vonage documents them (reference/vonage-platform.md, "Signed webhooks"):
    payload_hash = SHA-256 hex of the compact JSON of the query parameters (GET) or of the body (POST)."""

    SECRET = "lab-signature-secret-0123456789-abcdefgh"
    APP = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"

    @pytest.fixture
    def signed(self, served):
        ctx, runner = served
        ctx.signature_secret = self.SECRET
        ctx.application_id = self.APP
        return ctx, f"http://127.0.0.1:{runner.port}/webhooks/"

    def vonage_token(self, hashed: bytes, secret=None, **claims):
        import hashlib
        import time
        import uuid

        import jwt

        body = {"iat": int(time.time()), "jti": str(uuid.uuid4()), "iss": "Vonage",
                "payload_hash": hashlib.sha256(hashed).hexdigest(), "api_key": "abc123",
                "application_id": self.APP, **claims}
        return jwt.encode(body, secret or self.SECRET, algorithm="HS256")

    def post(self, url, body: bytes, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(url, data=body, headers=headers, timeout=5)

    def refusals(self, ctx):
        ctx.refusals.flush()
        counts: dict[str, int] = {}
        for e in ctx.events:
            if e.status == "refused":
                counts[e.payload["kind"]] = counts.get(e.payload["kind"], 0) + e.payload["count"]
        return counts

    def test_vonage_signed_get_is_accepted(self, signed):
        ctx, base = signed
        params = [("to", "447700900000"), ("from", "447700900001"), ("uuid", "u1"), ("region_url", "x y/é")]
        compact = json.dumps(dict(params), separators=(",", ":"), ensure_ascii=False).encode()
        r = requests.get(base + "answer", params=params, timeout=5,
                         headers={"Authorization": f"Bearer {self.vonage_token(compact)}"})
        assert r.status_code == 200 and r.json()[0]["text"] == "hi 447700900001"
        # the same token over the query in another order is refused: order is part of the hash
        swapped = [params[1], params[0], *params[2:]]
        r = requests.get(base + "answer", params=swapped, timeout=5,
                         headers={"Authorization": f"Bearer {self.vonage_token(compact)}"})
        assert r.status_code == 401

    def test_vonage_signed_post_is_accepted_compact_or_raw(self, signed):
        ctx, base = signed
        for uuid, sign_compact in (("u1", True), ("u2", False)):  # two calls: a repeated event counts once
            raw = b'{"uuid": "%s", "status": "answered", "from": "447700900001"}' % uuid.encode()
            compact = b'{"uuid":"%s","status":"answered","from":"447700900001"}' % uuid.encode()
            token = self.vonage_token(compact if sign_compact else raw)
            assert self.post(base + "event", raw, token).status_code == 204
        assert [(e.uuid, e.status) for e in ctx.events if e.kind == "event"] == [("u1", "answered"),
                                                                               ("u2", "answered")]

    def test_forged_tampered_replayed_and_foreign_are_refused_with_401(self, signed):
        ctx, base = signed
        body = b'{"uuid":"u1","status":"answered"}'
        forged = self.vonage_token(body, secret="another-secret-0123456789-abcdefghijkl")
        assert self.post(base + "event", body, forged).status_code == 401
        assert self.post(base + "event", body, self.vonage_token(body, iat=1_000_000)).status_code == 401
        assert self.post(base + "event", b'{"uuid":"u1","status":"completed"}',
                         self.vonage_token(body)).status_code == 401
        assert self.post(base + "event", body, self.vonage_token(body, application_id="other")).status_code == 401
        once = self.vonage_token(body)
        assert self.post(base + "event", body, once).status_code == 204
        assert self.post(base + "event", body, once).status_code == 401  # the same jti again: a replay
        assert [e.status for e in ctx.events if e.kind == "event"] == ["answered"]
        assert self.refusals(ctx) == {"bad-signature": 4, "replayed": 1}

    def test_unsigned_gets_503_in_live_mode_so_vonage_retries_and_401_in_the_sandbox(self, signed):
        ctx, base = signed
        body = b'{"uuid":"u1","status":"answered"}'
        assert self.post(base + "event", body).status_code == 401
        ctx.mode = "live"
        assert self.post(base + "event", body).status_code == 503
        assert requests.get(base + "answer", params={"uuid": "u1"}, timeout=5).status_code == 503
        assert not [e for e in ctx.events if e.kind in ("event", "answer")]
        assert self.refusals(ctx) == {"unsigned": 3}

    def test_many_refusals_make_few_lines(self, signed):
        ctx, base = signed
        for _ in range(40):
            self.post(base + "event", b"{}")
        lines = [e for e in ctx.events if e.status == "refused"]
        assert len(lines) == 1  # the first at once; the rest of the window is counted
        assert self.refusals(ctx) == {"unsigned": 40}
        assert len([e for e in ctx.events if e.status == "refused"]) == 2

    def test_secret_is_in_no_repr_or_app_config(self, signed):
        ctx, base = signed
        from labkit.server import create_app

        app = create_app(ctx)
        assert self.SECRET not in repr(ctx) and self.SECRET not in repr(app.config)
        assert self.SECRET not in str(dict(app.config))


def test_symlinks_out_of_the_audio_folder_are_not_served(served, audio_dir, tmp_path):
    _, runner = served
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"RIFF-outside")
    (audio_dir / "escape.wav").symlink_to(outside)  # an allowed name, pointing out of the folder
    (audio_dir / "passwd.mp3").symlink_to("/etc/passwd")
    (audio_dir / "sub").symlink_to(tmp_path)  # a folder link: sub/outside.wav is outside too
    (audio_dir / "alias.wav").symlink_to(audio_dir / "tone.wav")  # inside: fine
    base = f"http://127.0.0.1:{runner.port}/audio/"
    for name in ("escape.wav", "passwd.mp3", "sub/outside.wav"):
        r = requests.get(base + name, timeout=5)
        assert r.status_code == 404 and b"RIFF-outside" not in r.content and b"root:" not in r.content, name
    assert requests.get(base + "alias.wav", timeout=5).content == (audio_dir / "tone.wav").read_bytes()


def test_only_audio_files_are_served(served, audio_dir):
    _, runner = served
    (audio_dir / "notes.txt").write_text("private notes")
    (audio_dir / "script.py").write_text("print('x')")
    (audio_dir / "fifo.wav").mkdir()  # not a regular file
    base = f"http://127.0.0.1:{runner.port}/audio/"
    for name in ("notes.txt", "script.py", "fifo.wav"):
        r = requests.get(base + name, timeout=5)
        assert r.status_code == 404 and "private" not in r.text, name
