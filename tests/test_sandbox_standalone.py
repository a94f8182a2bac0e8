"""`labkit sandbox` as a separate process, driven over HTTP only, as an app in another language would.

A tiny answer server written here (not labkit's) serves an NCCO and the audio file it streams; the
application is configured with the CLI's flags; a virtual phone is created and dials the application's
number through the control API; what it heard is fetched as WAV and correlated with the source file.
The same is done with Vonage's Node SDK where `node` and `npm` are present.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from sandbox_support import best_correlation

RATE = 16000
SPEED = 10
REPO = Path(__file__).resolve().parents[1]


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
                    ncco = [{"action": "stream", "streamUrl": [f"{outer.url}/melody.wav"]}]
                    self._send(json.dumps(ncco).encode(), "application/json")
                elif self.path == "/melody.wav":
                    self._send(outer.audio, "audio/wav")
                else:
                    self.send_response(404)
                    self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.events.append(json.loads(body or b"{}"))
                self._send(b"", "text/plain")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SandboxProcess:
    """`labkit sandbox ...` in its own process; `url` is read from its banner."""

    def __init__(self, home: Path, *flags: str) -> None:
        cmd = [sys.executable, "-m", "labkit.cli", "sandbox", "--port", "0", "--speed", str(SPEED),
               "--home", str(home), *flags]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for(r"a local Voice API at (https?://\S+)")
        self.ca: str | None = str(home / "tls" / "ca.pem")
        self.home = home

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def _wait_for(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match.group(1)
        raise AssertionError(f"`labkit sandbox` did not print {pattern!r}; output: {''.join(self.output)}")

    def control(self, method: str, path: str, **kw) -> requests.Response:
        verify = self.ca if self.ca is not None else True
        r = requests.request(method, f"{self.url}/_labkit/{path}", verify=verify, timeout=10, **kw)
        r.raise_for_status()
        return r

    def wait_call(self, uuid: str, status: str = "completed", timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            call = self.control("GET", f"calls/{uuid}").json()
            if call["status"] == status:
                return call
            time.sleep(0.05)
        raise AssertionError(f"call {uuid} did not reach {status}: {call}")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        time.sleep(0.1)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


@pytest.fixture(scope="module")
def app():
    server = AnswerServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory, app):
    sb = SandboxProcess(tmp_path_factory.mktemp("standalone-home"), "--answer-url", f"{app.url}/answer",
                        "--event-url", f"{app.url}/event", "--number", "447700900555")
    yield sb
    out = sb.stop()
    assert "Sandbox stopped." in out and sb.proc.returncode == 0


def heard(sb: SandboxProcess, number: str, uuid: str) -> np.ndarray:
    wav = sb.control("GET", f"phones/{number}/heard.wav", params={"call": uuid}).content
    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == RATE
    return samples


def test_a_whole_inbound_call_over_http_only(standalone, app):
    sb = standalone
    assert sb.control("GET", "application").json()["number"] == "447700900555"  # --number
    sb.control("POST", "phones", json={"number": "447700900301", "answer_after": 0})
    call = sb.control("POST", "phones/447700900301/dial", json={"to": "447700900555"}).json()
    done = sb.wait_call(call["uuid"])
    assert [w["payload"]["status"] for w in done["webhooks"] if w["kind"] == "event"][-1] == "completed"
    statuses = [e.get("status") for e in app.events if e.get("uuid") == call["uuid"]]
    assert statuses[0] == "started" and statuses[-1] == "completed"  # the app's event_url got them
    samples = heard(sb, "447700900301", call["uuid"])
    reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
    score, lag = best_correlation(samples, reference)
    assert score > 0.95, f"heard audio does not match the streamed file (score {score:.3f} at {lag})"


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
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm are not installed (make system-deps installs them)")
    folder = REPO / ".pytest_cache" / "node-sdk"
    if not (folder / "node_modules" / "@vonage" / "server-sdk").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"name": "labkit-node-sdk-test", "private": true}\n')
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "@vonage/server-sdk@3"], cwd=folder,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"npm could not install @vonage/server-sdk (offline?): {proc.stderr[-300:]}")
    (folder / "call.js").write_text(NODE_SCRIPT)
    return folder


def test_the_node_sdk_places_a_call_and_the_phone_hears_the_stream(standalone, app, node_sdk):
    sb = standalone
    sb.control("POST", "phones", json={"number": "447700900302", "answer_after": 0})
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": sb.ca}
    key = sb.home / "private.key"
    app_id = sb.control("GET", "application").json()["application_id"]
    proc = subprocess.run(["node", "call.js", sb.url, app_id, str(key), "447700900302", "447700900555",
                           f"{app.url}/melody.wav"], cwd=node_sdk, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    uuid = result["created"]["uuid"]
    assert result["created"]["status"] == "started" and result["status"] in ("started", "ringing", "answered")
    sb.wait_call(uuid)
    reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
    assert best_correlation(heard(sb, "447700900302", uuid), reference)[0] > 0.95


def test_the_node_sdk_over_plain_http(tmp_path_factory, app, node_sdk):
    """`--http`: the same call with the Node SDK pointed at http://127.0.0.1:PORT (no CA at all)."""
    sb = SandboxProcess(tmp_path_factory.mktemp("http-home"), "--http", "--event-url", f"{app.url}/event")
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
        sb.ca = None  # plain http: nothing to verify
        sb.wait_call(uuid)
        reference, _ = sf.read(io.BytesIO(app.audio), dtype="int16")
        assert best_correlation(heard(sb, "447700900303", uuid), reference)[0] > 0.95
    finally:
        out = sb.stop()
    assert "Sandbox stopped." in out
