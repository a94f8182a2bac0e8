"""Helpers for the sandbox tests: a local webhook receiver, a WebSocket app, the SDK client, audio.

The receiver plays the lab's part: a Flask app on werkzeug's `make_server` in a thread that records
every webhook (raw body and headers too, for signature checks), answers with configurable NCCOs, and
serves audio files over http on 127.0.0.1 (like the lab does). Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from flask import Flask, Response, request, send_from_directory
from werkzeug.serving import WSGIRequestHandler, make_server

# what `from support.sandbox import *` gives a test module: the fixtures
__all__ = ["client", "own_sandbox", "receiver", "sandbox", "sandbox_home", "test_audio"]

REPO = Path(__file__).resolve().parents[2]
AUDIO_DIR = REPO / "audio"


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Hook:
    """One webhook the receiver got."""

    path: str
    method: str
    payload: dict
    body: bytes
    headers: dict
    at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        p = self.payload
        if "status" in p:
            return str(p["status"])
        if "dtmf" in p or "speech" in p:
            return "input"
        if "recording_url" in p:
            return "record"
        if "reason" in p:
            return "error"
        if "conversation_uuid_from" in p:
            return "transfer"
        return "notify"


def make_test_audio(folder: Path) -> dict[str, Path]:
    """The audio files the tests use: the repo's samples when present, else generated tones."""
    folder.mkdir(parents=True, exist_ok=True)
    rate = 16000
    out: dict[str, Path] = {}
    for name in ("music.wav", "music.mp3", "silence.wav", "prompt.wav", "beep.wav"):
        if (AUDIO_DIR / name).is_file():
            out[name] = AUDIO_DIR / name
    t = np.arange(int(4 * rate)) / rate
    if "music.wav" not in out:
        notes = 220 * 2 ** (np.floor(t * 4) % 8 / 12)
        phase = 2 * np.pi * np.cumsum(notes) / rate
        music = 0.4 * np.sin(phase) + 0.1 * np.sin(3 * phase)
        sf.write(folder / "music.wav", music, rate, subtype="PCM_16")
        out["music.wav"] = folder / "music.wav"
    if "silence.wav" not in out:
        sf.write(folder / "silence.wav", np.zeros(2 * rate), rate, subtype="PCM_16")
        out["silence.wav"] = folder / "silence.wav"
    # a second, different "music" for conference hold music (a slow chord)
    hold = 0.3 * (np.sin(2 * np.pi * 261.6 * t) + np.sin(2 * np.pi * 329.6 * t) + np.sin(2 * np.pi * 392 * t)) / 3
    sf.write(folder / "hold.wav", hold, rate, subtype="PCM_16")
    out["hold.wav"] = folder / "hold.wav"
    return out


class Receiver:
    """The lab's webhook server, for tests. `url` is http://127.0.0.1:PORT."""

    def __init__(self, audio_dirs: list[Path] | None = None) -> None:
        self.hooks: list[Hook] = []
        self.answer_ncco: list | Callable[[Hook], Any] = []
        self.replies: dict[str, Any] = {}  # event kind -> NCCO list or callable(hook) -> NCCO/None
        self.delays: dict[str, list[float]] = {}  # path -> seconds to sleep on successive requests
        self.status_codes: dict[str, list[int]] = {}  # path -> HTTP status for successive requests
        self._cv = threading.Condition()
        self._dirs = list(audio_dirs or []) + [AUDIO_DIR]
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app = self._make_app()

    # -------------------------------------------------------------- server
    def _make_app(self) -> Flask:
        app = Flask("sandbox-test-receiver")

        @app.route("/audio/<path:name>")
        def audio(name: str) -> Response:
            for folder in self._dirs:
                if (folder / name).is_file():
                    resp = send_from_directory(folder, name)
                    resp.headers["Cache-Control"] = "public, max-age=360000"
                    return resp
            return Response("no such file", status=404)

        @app.route("/<path:hook>", methods=["GET", "POST"])
        def webhook(hook: str) -> Response:
            body = request.get_data()
            if request.method == "GET":
                payload: dict = {}
                for k, v in request.args.items():
                    try:
                        payload[k] = json.loads(v) if v[:1] in "[{" else v
                    except ValueError:
                        payload[k] = v
            else:
                payload = json.loads(body) if body else {}
            item = Hook("/" + hook, request.method, payload, body, dict(request.headers))
            with self._cv:
                self.hooks.append(item)
                self._cv.notify_all()
            delays = self.delays.get(item.path)
            if delays:
                time.sleep(delays.pop(0))
            codes = self.status_codes.get(item.path)
            if codes:
                code = codes.pop(0)
                if code >= 300:
                    return Response("nope", status=code)
            reply = self._reply(item)
            if reply is None:
                return Response(status=204)
            return Response(json.dumps(reply), mimetype="application/json")

        return app

    def _reply(self, item: Hook) -> Any:
        if item.path.startswith("/answer") or item.path.startswith("/fallback"):
            value = self.answer_ncco
        else:
            value = self.replies.get(item.kind)
        if callable(value):
            return value(item)
        return value

    def start(self) -> Receiver:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="test-receiver")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def audio_url(self, name: str) -> str:
        return f"{self.url}/audio/{name}"

    # -------------------------------------------------------------- queries
    def find(self, kind: str | None = None, uuid: str | None = None, path: str | None = None) -> list[Hook]:
        with self._cv:
            items = list(self.hooks)
        return [h for h in items
                if (kind is None or h.kind == kind)
                and (uuid is None or h.payload.get("uuid") == uuid or h.payload.get("call_uuid") == uuid)
                and (path is None or h.path == path)]

    def wait_for(self, kind: str | None = None, uuid: str | None = None, path: str | None = None,
                 timeout: float = 10.0, count: int = 1) -> Hook:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                found = self.find(kind, uuid, path)
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(h.path, h.kind, h.payload.get("uuid", "")[:8]) for h in self.hooks]
                    raise AssertionError(f"no {kind or path} webhook for {uuid}; got {seen}")
                self._cv.wait(min(left, 0.1))

    def statuses(self, uuid: str) -> list[str]:
        return [h.payload["status"] for h in self.find(uuid=uuid) if "status" in h.payload]


def sdk_client(sb: Any) -> Any:
    """The real vonage SDK pointed at the sandbox (after `sb.trust()`)."""
    from vonage import Auth, HttpClientOptions, Vonage

    sb.trust()
    return Vonage(Auth(application_id=sb.application_id, private_key=str(sb.private_key_path)),
                  HttpClientOptions(api_host=sb.api_host, timeout=10))


def dump(ncco: list) -> list:
    """SDK NCCO models -> wire dicts (the SDK's own serialisation)."""
    return [a.model_dump(by_alias=True, exclude_none=True, mode="json") for a in ncco]


class WsApp:
    """A tiny WebSocket server playing the lab's /socket: records what the platform sends."""

    def __init__(self, on_connect: Callable[[WsApp, Any], None] | None = None) -> None:
        self.texts: list[Any] = []
        self.frames: list[bytes] = []
        self.request_headers: dict = {}
        self.connection: Any = None
        self.on_connect = on_connect
        self._cv = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.closed = threading.Event()

    def start(self) -> WsApp:
        from websockets.sync.server import serve

        self._server = serve(self._handler, "127.0.0.1", 0, compression=None, max_size=None)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="test-ws")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/socket"

    def _handler(self, ws: Any) -> None:
        self.connection = ws
        self.request_headers = dict(ws.request.headers)
        try:
            for msg in ws:
                with self._cv:
                    if isinstance(msg, bytes):
                        self.frames.append(msg)
                    else:
                        self.texts.append(json.loads(msg))
                        if self.texts[-1].get("event") == "websocket:connected" and self.on_connect:
                            threading.Thread(target=self.on_connect, args=(self, ws), daemon=True).start()
                    self._cv.notify_all()
        except Exception:
            pass
        finally:
            self.closed.set()
            with self._cv:
                self._cv.notify_all()

    def wait_text(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for t in self.texts:
                    if predicate(t):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching text message; got {self.texts}")
                self._cv.wait(min(left, 0.1))

    def wait_frames(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.frames) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(self.frames)} frames of {count}")
                self._cv.wait(min(left, 0.1))

    def audio(self) -> np.ndarray:
        with self._cv:
            data = b"".join(self.frames)
        return np.frombuffer(data, dtype="<i2").astype(np.int16)


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def best_correlation(signal: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Peak normalised cross-correlation of `reference` within `signal` (and its lag in samples)."""
    from scipy.signal import fftconvolve

    s = np.asarray(signal, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if s.size < r.size:
        r = r[: s.size]
    corr = fftconvolve(s, r[::-1], mode="valid")
    csum = np.concatenate([[0.0], np.cumsum(s * s)])
    window = np.maximum(csum[r.size:] - csum[: s.size - r.size + 1], 0.0)  # energy under each alignment
    energy = np.sqrt(window) * np.sqrt(np.sum(r * r))
    energy[energy == 0] = np.inf
    score = corr / energy
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ------------------------------------------------------------------ pytest fixtures (import them in a test module)

SPEED = 10.0


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox home for the test session: keys and certificates are made once."""
    return tmp_path_factory.mktemp("sandbox-home")


@pytest.fixture(scope="session")
def test_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_test_audio(tmp_path_factory.mktemp("sandbox-audio"))


@pytest.fixture
def receiver(test_audio: dict[str, Path]) -> Any:
    rx = Receiver([next(iter(test_audio.values())).parent, test_audio["hold.wav"].parent]).start()
    yield rx
    rx.stop()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, receiver: Receiver) -> Any:
    """The pytest plugin's `vonage_sandbox` (labkit/testing/plugin.py), in this process at speed 10, with its
    application pointed at `receiver` through the Application API (`vonage_app`), as a user's test does.

    One sandbox per session (per xdist worker), reset before each test by the plugin, so every test here
    also checks that reset leaves nothing behind. What a test may change beyond that (the application's
    timeouts and fallback, the account's signature secret, chaos delivery) is put back after it."""
    request.applymarker(pytest.mark.vonage_sandbox(in_process=True, speed=SPEED))  # a test's own marker wins
    shared = request.getfixturevalue("vonage_sandbox")
    sb = shared.sandbox
    settings, secret, chaos = dataclasses.replace(sb._settings), sb._account.signature_secret, sb.webhook_chaos
    request.getfixturevalue("vonage_app")(answer_url=receiver.url + "/answer", event_url=receiver.url + "/event")
    yield sb
    sb.webhook_chaos = chaos
    sb._account.signature_secret = secret
    sb._account.set_signed(sb._account.default, True)
    for f in dataclasses.fields(settings):
        setattr(sb._settings, f.name, getattr(settings, f.name))


@pytest.fixture
def own_sandbox(tmp_path: Path, receiver: Receiver) -> Any:
    """A sandbox of the test's own (the plugin's `VonageSandbox`, in this process), for a module that changes
    the account (applications, numbers, credentials): nothing it does can reach another test. Such a module
    overrides `sandbox` with `own_sandbox.sandbox` and `client` with `own_sandbox.client()`."""
    from labkit.testing.service import VonageSandbox

    shared = VonageSandbox.start(tmp_path / "sandbox-home", speed=SPEED, in_process=True)
    shared.trust()
    shared.configure_app(receiver.url + "/answer", receiver.url + "/event")
    yield shared
    shared.stop()


@pytest.fixture
def client(request: pytest.FixtureRequest, sandbox: Any) -> Any:
    """The plugin's `vonage_client`: the vonage SDK pointed at the sandbox (JWT, API key and secret)."""
    return request.getfixturevalue("vonage_client")
