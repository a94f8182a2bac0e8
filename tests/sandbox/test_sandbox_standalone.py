"""`labkit sandbox` as a separate process, driven over HTTP only, as an app in another language would.

A tiny answer server written here (not labkit's) serves an NCCO and the audio file it streams. As a
Node or Ruby developer would on Vonage, the test creates a Voice application with the Application API
(`POST /v2/applications`, HTTP Basic with the API key and secret the sandbox printed) and links the
account's number to it with the Numbers API (`POST /number/update`), with plain `requests`; then a
virtual phone dials that number through the control API, and what it heard is fetched as WAV and
correlated with the source file. The same is done with Vonage's Node SDK where `node` and `npm` are
present. A separate small test covers the CLI's own flags (`--answer-url`, `--event-url`, `--number`).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import requests
import soundfile as sf
from support.npm import npm_folder, write_script
from support.sandbox import best_correlation
from support.sandbox_process import SandboxProcess

RATE = 16000
SPEED = 10
REPO = Path(__file__).resolve().parents[2]


def source_audio() -> bytes:
    """Two seconds of a melody (a distinct pattern, so the correlation means something)."""
    t = np.arange(2 * RATE) / RATE
    notes = 330 * 2 ** (np.floor(t * 6) % 5 / 12)
    audio = 0.4 * np.sin(2 * np.pi * np.cumsum(notes) / RATE)
    buf = io.BytesIO()
    sf.write(buf, audio, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class AnswerServer:
    """The app: answers with a stream NCCO, takes events, serves the audio. Plain http.server."""

    def __init__(self) -> None:
        self.audio = source_audio()
        self.events: list[dict] = []
        self.answers: list[dict] = []  # the query of each GET /answer (to, from, uuid, ...)
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/answer"):
                    outer.answers.append(dict(parse_qsl(urlsplit(self.path).query)))
                    ncco = [{"action": "stream", "streamUrl": [f"{outer.url}/melody.wav"]}]
                    self._send(json.dumps(ncco).encode(), "application/json")
                elif self.path == "/melody.wav":
                    self._send(outer.audio, "audio/wav")
                else:
                    self.send_response(404)
                    self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.arrived:
                    outer.events.append(json.loads(body or b"{}"))
                    outer.arrived.notify_all()
                self._send(b"", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def statuses(self, uuid: str, until: str = "completed", timeout: float = 30.0) -> list[str]:
        """The statuses the app's event_url got for this call, once `until` has arrived. The sandbox
        sends events after the state changes, so its `GET /_labkit/calls` may say completed first."""
        def mine() -> list[str]:
            return [e.get("status") for e in self.events if e.get("uuid") == uuid]

        with self.arrived:
            self.arrived.wait_for(lambda: until in mine(), timeout)
            return mine()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def control(sb: SandboxProcess, method: str, path: str, **kw) -> requests.Response:
    """One control API request with plain requests (`/_labkit/...`), as curl would make it."""
    r = requests.request(method, f"{sb.url}/_labkit/{path}", verify=sb.ca or True, timeout=10, **kw)
    r.raise_for_status()
    return r


def wait_call(sb: SandboxProcess, uuid: str, status: str = "completed", timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        call = control(sb, "GET", f"calls/{uuid}").json()
        if call["status"] == status or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert call["status"] == status, f"call {uuid} did not reach {status}: {call}"
    return call


@pytest.fixture(scope="module")
def app():
    server = AnswerServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """`labkit sandbox` with no application flags at all: the test sets the application up itself."""
    sb = SandboxProcess(tmp_path_factory.mktemp("standalone-home"), speed=SPEED)
    yield sb
    out = sb.stop()
    assert "Sandbox stopped." in out


@pytest.fixture(scope="module")
def configured(standalone, app, tmp_path_factory) -> dict:
    """A Voice application made with the Application API and the number linked to it with the Numbers
    API, over plain HTTP with the printed API key and secret: what a Node/Ruby developer does on Vonage."""
    sb = standalone
    auth, number = (sb.rows["API key"], sb.rows["API secret"]), sb.rows["number"]
    hooks = {"answer_url": {"address": f"{app.url}/answer", "http_method": "GET"},
             "event_url": {"address": f"{app.url}/event", "http_method": "POST"}}
    r = requests.post(f"{sb.url}/v2/applications", auth=auth, verify=sb.ca, timeout=10,
                      json={"name": "my node app", "capabilities": {"voice": {"webhooks": hooks}}})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["capabilities"]["voice"]["webhooks"]["answer_url"]["address"] == f"{app.url}/answer"
    key = tmp_path_factory.mktemp("my-app") / "private.key"
    key.write_text(created["keys"]["private_key"])
    owned = requests.get(f"{sb.url}/account/numbers", auth=auth, verify=sb.ca, timeout=10).json()
    country = next(n["country"] for n in owned["numbers"] if n["msisdn"] == number)
    r = requests.post(f"{sb.url}/number/update", auth=auth, verify=sb.ca, timeout=10,
                      data={"country": country, "msisdn": number, "app_id": created["id"]})
    assert r.status_code == 200 and r.json()["error-code"] == "200", r.text
    linked = requests.get(f"{sb.url}/account/numbers", params={"application_id": created["id"]}, auth=auth,
                          verify=sb.ca, timeout=10).json()
    assert [n["msisdn"] for n in linked["numbers"]] == [number]
    return {"id": created["id"], "key": key, "number": number}


def heard(sb: SandboxProcess, number: str, uuid: str) -> np.ndarray:
    wav = control(sb, "GET", f"phones/{number}/heard.wav", params={"call": uuid}).content
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == RATE
    return samples


def test_a_whole_inbound_call_over_http_only(standalone, configured, app):
    sb, number = standalone, configured["number"]
    control(sb, "POST", "phones", json={"number": "447700900301", "answer_after": 0})
    call = control(sb, "POST", "phones/447700900301/dial", json={"to": number}).json()
    statuses = app.statuses(call["uuid"])
    assert statuses[0] == "started" and statuses[-1] == "completed"  # the app's event_url got them
    mine = [a for a in app.answers if a.get("uuid") == call["uuid"]]
    assert len(mine) == 1 and mine[0]["to"] == number and mine[0]["from"] == "447700900301"  # the new app's
    done = control(sb, "GET", f"calls/{call['uuid']}").json()  # the sandbox's side: what it sent, and to whom
    assert done["status"] == "completed"
    assert [w["payload"]["status"] for w in done["webhooks"] if w["kind"] == "event"][-1] == "completed"
    assert {w["url"] for w in done["webhooks"]} == {f"{app.url}/answer", f"{app.url}/event"}
    samples = heard(sb, "447700900301", call["uuid"])
    reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
    score, lag = best_correlation(samples, reference)
    assert score > 0.95, f"heard audio does not match the streamed file (score {score:.3f} at {lag})"


def test_the_cli_flags_set_up_the_application_and_its_number(tmp_path, app):
    """`labkit sandbox --answer-url --event-url --number`: the number is rented in the account and linked
    to the default application, and a phone dialling it reaches that application's answer_url."""
    sb = SandboxProcess(tmp_path / "home", "--answer-url", f"{app.url}/answer", "--event-url", f"{app.url}/event",
                        "--number", "447700900555", speed=SPEED)
    try:
        assert sb.rows["number"] == "447700900555" and sb.rows["answer_url"] == f"{app.url}/answer"
        auth = (sb.rows["API key"], sb.rows["API secret"])
        owned = requests.get(f"{sb.url}/account/numbers", auth=auth, verify=sb.ca, timeout=10).json()
        links = {n["msisdn"]: n.get("app_id") for n in owned["numbers"]}
        assert links["447700900555"] == sb.rows["application id"]  # rented and linked, as on the dashboard
        control(sb, "POST", "phones", json={"number": "447700900304", "answer_after": 0})
        call = control(sb, "POST", "phones/447700900304/dial", json={"to": "447700900555"}).json()
        wait_call(sb, call["uuid"])
        mine = [a for a in app.answers if a.get("uuid") == call["uuid"]]
        assert len(mine) == 1 and mine[0]["to"] == "447700900555"
        assert app.statuses(call["uuid"])[-1] == "completed"
        reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
        assert best_correlation(heard(sb, "447700900304", call["uuid"]), reference)[0] > 0.95
    finally:
        out = sb.stop()
    assert "Sandbox stopped." in out


NODE_SCRIPT = r"""
const fs = require('fs');
const { Vonage } = require('@vonage/server-sdk');
const [apiHost, applicationId, keyPath, to, from, streamUrl] = process.argv.slice(2);
const vonage = new Vonage({ applicationId, privateKey: fs.readFileSync(keyPath) }, { apiHost });
(async () => {
  const created = await vonage.voice.createOutboundCall({
    to: [{ type: 'phone', number: to }], from: { type: 'phone', number: from },
    ncco: [{ action: 'stream', streamUrl: [streamUrl] }],
  });
  const info = await vonage.voice.getCall(created.uuid);
  console.log(JSON.stringify({ created, status: info.status }));
})().catch((err) => { console.error(err && (err.response ? err.response.status : err)); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_sdk(tmp_path_factory) -> Path:
    folder = npm_folder("node-sdk", ["@vonage/server-sdk@3"])
    write_script(folder, "call.js", NODE_SCRIPT)
    return folder


def test_the_node_sdk_places_a_call_and_the_phone_hears_the_stream(standalone, configured, app, node_sdk):
    """The Node SDK with the application made above (its id and the private key the API returned)."""
    sb = standalone
    control(sb, "POST", "phones", json={"number": "447700900302", "answer_after": 0})
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": sb.ca}
    proc = subprocess.run(["node", "call.js", sb.url, configured["id"], str(configured["key"]), "447700900302",
                           configured["number"], f"{app.url}/melody.wav"], cwd=node_sdk, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    uuid = result["created"]["uuid"]
    # getCall read the call back; at speed 10 a busy machine can let the whole short call run out first
    assert result["created"]["status"] == "started"
    assert result["status"] in ("started", "ringing", "answered", "completed")
    wait_call(sb, uuid)
    assert app.statuses(uuid)[-1] == "completed"  # the application's event_url, as no event_url was given
    reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
    assert best_correlation(heard(sb, "447700900302", uuid), reference)[0] > 0.95


def test_the_node_sdk_over_plain_http(tmp_path_factory, app, node_sdk):
    """`--http`: the same call with the Node SDK pointed at http://127.0.0.1:PORT (no CA at all)."""
    sb = SandboxProcess(tmp_path_factory.mktemp("http-home"), "--http", "--event-url", f"{app.url}/event",
                        speed=SPEED)
    try:
        assert sb.url.startswith("http://127.0.0.1:")
        requests.post(f"{sb.url}/_labkit/phones", json={"number": "447700900303", "answer_after": 0},
                      timeout=10).raise_for_status()
        app_id = requests.get(f"{sb.url}/_labkit/application", timeout=10).json()["application_id"]
        env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
        proc = subprocess.run(["node", "call.js", sb.url, app_id, str(sb.home / "private.key"), "447700900303",
                               "447700900000", f"{app.url}/melody.wav"], cwd=node_sdk, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        uuid = json.loads(proc.stdout.strip().splitlines()[-1])["created"]["uuid"]
        wait_call(sb, uuid)
        reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
        assert best_correlation(heard(sb, "447700900303", uuid), reference)[0] > 0.95
    finally:
        out = sb.stop()
    assert "Sandbox stopped." in out


def test_a_stop_signal_taken_by_any_thread_stops_the_sandbox(tmp_path):
    """The kernel gives a signal sent to a process to any thread that takes it (signal(7)); Python runs the
    handler only in the main thread. SIGTERM is sent here to each of the sandbox's other threads in turn
    (tgkill), as the kernel chose once in CI, where `labkit sandbox` then slept on for an hour."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "tgkill"):
        pytest.skip("no tgkill(2) here (Linux with glibc 2.30 or later)")
    for index in range(2):  # one run per thread would be slow: the newest and the oldest non-main thread
        sb = SandboxProcess(tmp_path / "home", speed=SPEED)
        pid = sb.proc.pid
        others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
        assert others, "the sandbox runs its server and clock on threads"
        target = others[-1 if index else 0]
        assert libc.tgkill(pid, target, signal.SIGTERM) == 0, ctypes.get_errno()
        try:
            sb.proc.wait(10)
        except subprocess.TimeoutExpired:
            sb.proc.kill()
            sb.proc.wait(5)
            pytest.fail(f"SIGTERM taken by thread {target} did not stop the sandbox within 10 s")
        assert sb.proc.returncode == 0
