"""The `Sandbox` object: one running local Voice API (start/stop, addresses and credentials, the default
application's settings, phones and calls), over the platform model and the HTTPS server.

Importable as `labkit.sandbox.Sandbox`; the package's docstring shows it in use and lists the modules.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from labkit.errors import SandboxError
from labkit.sandbox import heap
from labkit.sandbox.apis.account_store import AccountStore
from labkit.sandbox.apis.accounts import DEFAULT_APP_NAME, Account, Application
from labkit.sandbox.apis.auth import load_or_create_credentials
from labkit.sandbox.engine.legs import SandboxCall
from labkit.sandbox.engine.phones import KEEP, VirtualPhone
from labkit.sandbox.engine.platform import Platform
from labkit.sandbox.identity import SandboxIdentity
from labkit.sandbox.wire.tls import ensure_tls
from labkit.sandbox.wire.webhooks import WebhookChaos, WebhookRecord, WebhookSettings

__all__ = ["Sandbox"]

STOP_DRAIN_SECONDS = 2.0  # real seconds stop() waits for the last `completed` webhooks to go out

log = logging.getLogger("labkit.sandbox")


def _warm_up() -> None:
    """Start the speech engine and import soundfile once, in the background; the audio clock starts
    after it, so a first `talk` or `stream` never stalls for it inside a call (a second of imports is
    ten seconds of call at speed=10), and `start()` still returns at once. No scipy: resampling is
    numpy's (media/polyphase.py), and scipy.signal alone was 69 MB of a 139 MB process."""
    try:
        from labkit.sandbox.audio import tts
        from labkit.sandbox.audio.sources import babble

        babble("warm up", 16000)
        import soundfile  # noqa: F401 - decoding fetched files (1 MB)

        tts.warm_up()  # no-op (babble) where no engine loads; resamples once, so the filter is made
    except Exception:
        log.exception("sandbox warm-up failed")




class _Unset:
    def __repr__(self) -> str:
        return "<unchanged>"


UNSET: Any = _Unset()


class Sandbox(SandboxIdentity):
    """The local Voice API: HTTPS REST on 127.0.0.1, webhooks out, virtual phones, WebSocket legs.

    `home` holds what is made once per installation (CA, certificate, application key, recordings);
    default `labkit.config.state_dir()/sandbox`. `speed` scales every timer and the audio clock.
    """

    def __init__(self, port: int = 0, speed: float = 1.0, home: str | os.PathLike | None = None, *,
                 http: bool = False, vonage_hostnames: bool = False, vonage_port: int | None = None) -> None:
        if home is None:
            from labkit.config import state_dir

            home = state_dir() / "sandbox"
        self.home = Path(home).expanduser()
        self.home.mkdir(parents=True, exist_ok=True)
        self.requested_port = int(port)
        self.speed = float(speed)
        self.http = bool(http)  # plain HTTP, for clients that cannot do https on another port (Node SDK 2.x)
        self.vonage_hostnames = bool(vonage_hostnames)  # certificate and recording URLs use Vonage's names
        # the port clients reach Vonage's names on, when it is not this sandbox's own: 443 through the CONNECT
        # proxy or the Node preload (wire/vonage_proxy.py), so URLs are exactly Vonage's (api.nexmo.com/...)
        self.vonage_port = int(vonage_port) if vonage_port else None
        self._creds = load_or_create_credentials(self.home)
        self._settings = WebhookSettings()
        self._platform = Platform(
            speed=self.speed, home=self.home, settings=self._settings,
            application_id=self._creds.application_id, api_key=self._creds.api_key, number=self._creds.number,
        )
        self._account = Account(
            api_key=self._creds.api_key, api_secret=self._creds.api_secret,
            signature_secret=self._creds.signature_secret, number=self._creds.number,
            default_app=Application(id=self._creds.application_id, name=DEFAULT_APP_NAME,
                                    public_key=self._creds.public_key_pem.decode(), settings=self._settings),
        )
        # applications made through the API, and number links, outlive the process (account_store.py)
        AccountStore(self.home).attach(self._account)
        self._platform.account = self._account
        self._platform.webhooks.chaos = WebhookChaos.parse(os.environ.get("LABKIT_SANDBOX_CHAOS"))
        self._tls = None
        self._runner: Any = None
        self._region_runner: Any = None  # the second address, sent as region_url (engine/regions.py)
        self._lock = threading.RLock()
        self._port: int | None = None
        self._warm: threading.Thread | None = None
        self._holds_heap = False  # heap.hold() done at the end of the warm-up, released at stop

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._runner is not None and self._runner.running

    def start(self) -> Sandbox:
        """Serve HTTPS on 127.0.0.1 and start the audio clock (idempotent; returns self)."""
        from labkit.sandbox.app import create_app
        from labkit.sandbox.wire.http_server import QuietHandler, ServerRunner

        with self._lock:
            if self.running:
                return self
            self._tls = ensure_tls(self.home, vonage_hostnames=self.vonage_hostnames)
            context = None if self.http else self._tls.server_context()
            app = create_app(self._platform, self._creds)
            runner = ServerRunner(app, "127.0.0.1", self.requested_port,
                                  fallback=0, ssl_context=context, name="labkit-sandbox",
                                  request_handler=QuietHandler, on_stop=self._shut_connections)
            runner.start()
            self._runner = runner
            self._port = runner.port
            self._platform.base_url = self.base_url
            if self.vonage_hostnames:  # region_url: the real regional host name, on this port (engine/regions.py)
                self._platform.vonage_port = self.vonage_port or self._port
            else:  # region_url: a second address of the sandbox's own, so a client ignoring it is seen
                region = ServerRunner(app, "127.0.0.1", 0, ssl_context=context, name="labkit-sandbox-region",
                                      request_handler=QuietHandler, on_stop=self._shut_connections)
                region.start()
                self._region_runner = region
                self._platform.region_base = f"{'http' if self.http else 'https'}://127.0.0.1:{region.port}"
            self._platform.files_base = self.vonage_base_url if self.vonage_hostnames else ""
            self._platform.stopping = False
            # the audio clock starts once the warm-up is over, so its cost is never call time
            self._warm = threading.Thread(target=self._warm_then_tick, args=(runner,), name="labkit-sandbox-warmup",
                                          daemon=True)
            self._warm.start()
            log.info("sandbox Voice API on %s (speed %s)", self.base_url, self.speed)
            return self

    def _warm_then_tick(self, runner: Any) -> None:
        _warm_up()
        with self._lock:
            if self._runner is runner and runner.running and not self._platform.stopping:
                if not self._holds_heap:  # start-up's objects out of full collections (heap.py)
                    heap.hold()
                    self._holds_heap = True
                self._platform.clock.start()

    @property
    def ready(self) -> bool:
        """The warm-up is over and the audio clock runs (calls placed before wait for it)."""
        return self._platform.clock.running

    def stop(self) -> None:
        """Hang up every call (posting `completed`, for up to 2 s), stop the clock, close WebSockets,
        free the port and the threads (idempotent)."""
        with self._lock:
            p = self._platform
            endpoints = [leg.endpoint for leg in list(p.legs.values())
                         if leg.endpoint is not None and hasattr(leg.endpoint, "join")]
            live = [leg for leg in list(p.legs.values()) if not leg.ended]
            p.end_all(events=True)  # like hanging up: the lab's event log sees each call complete
            drain_until = time.monotonic() + STOP_DRAIN_SECONDS
            for leg in live:
                leg.hooks.close(wait=max(0.0, drain_until - time.monotonic()))
            p.stopping = True
            p.webhooks.closed = True  # anything still queued is dropped: stop never hangs on a slow app
            p.webhooks.sessions.close()
            p.clock.stop()
            for endpoint in endpoints:
                endpoint.close()
            for endpoint in endpoints:
                endpoint.join(2.0)
            if self._runner is not None:
                self._runner.stop()
            if self._region_runner is not None:
                self._region_runner.stop()
                self._region_runner = None
            deadline = time.monotonic() + 5.0  # runners blocked in a webhook finish it first
            for leg in list(p.legs.values()):
                if leg.thread is not None and leg.thread is not threading.current_thread():
                    leg.thread.join(max(0.0, deadline - time.monotonic()))
                leg.hooks.close()
            if self._holds_heap:
                self._holds_heap = False
                heap.release()

    def _shut_connections(self) -> None:
        """End the SDK's keep-alive connections, which `shutdown()` alone would leave open."""
        for runner in (self._runner, self._region_runner):
            server = runner.server if runner is not None else None
            for conn in list(getattr(server, "labkit_connections", ())):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        calls = len(self._platform.order)
        return f"sandbox {state}, clock x{self.speed:g}, {calls} call{'s' if calls != 1 else ''} so far"

    # ------------------------------------------------------------------ the application

    def configure(self, answer_url: Any = UNSET, event_url: Any = UNSET, answer_method: Any = UNSET,
                  event_method: Any = UNSET, signature_secret: Any = UNSET, fallback_answer_url: Any = UNSET,
                  *, connect_timeout: Any = UNSET, answer_timeout: Any = UNSET,
                  event_timeout: Any = UNSET, number: Any = UNSET) -> Sandbox:
        """Set the default application's webhooks, like its page on the Vonage dashboard.

        The sandbox's own way in (its CLI flags and control surface); apps, the lab included, use the
        Application API (`/v2/applications`) with the API key and secret, as on Vonage.

        `answer_url`/`event_url` serve inbound calls and are the default `event_url` of every call;
        methods default to GET (answer) and POST (event); `signature_secret` turns on signed webhooks
        (HS256 JWT in `Authorization`); `fallback_answer_url` is tried when they fail. The timeouts
        (seconds, real time) are the Application API's `connection_timeout` and `socket_timeout`
        (defaults 1, 5 and 10). `number` is the application's virtual number (what `dial` calls).
        Arguments left out keep their current value; None clears one.
        """
        if number is not UNSET:
            digits = str(number or "").strip().lstrip("+")
            if not digits.isdigit() or not 7 <= len(digits) <= 15:
                raise SandboxError(f"number must be an E.164 number (7-15 digits), not {number!r}")
            self._platform.number = digits
            self._account.rent(digits, self._account.default_id)  # rented and linked to the default application
        s = self._settings
        if signature_secret is not UNSET:  # the account's secret; signed_callbacks on the application
            if signature_secret:
                self._account.signature_secret = signature_secret
            self._account.set_signed(self._account.default, bool(signature_secret))
        for name, value in (("answer_url", answer_url), ("event_url", event_url),
                            ("fallback_answer_url", fallback_answer_url)):
            if value is not UNSET:
                setattr(s, name, value or None)
        for name, value, default in (("answer_method", answer_method, "GET"), ("event_method", event_method, "POST")):
            if value is not UNSET:
                method = (value or default).upper()
                if method not in ("GET", "POST"):
                    raise SandboxError(f"{name} must be GET or POST, not {value!r}")
                setattr(s, name, method)
        for name, value in (("connect_timeout", connect_timeout), ("answer_timeout", answer_timeout),
                            ("event_timeout", event_timeout)):
            if value is not UNSET:
                if value is None or float(value) <= 0:
                    raise SandboxError(f"{name} must be a positive number of seconds")
                setattr(s, name, float(value))
        return self

    @property
    def webhook_chaos(self) -> WebhookChaos | None:
        """Chaos delivery of webhooks (jitter, reordering, duplicates), or None. Set from
        LABKIT_SANDBOX_CHAOS at construction (see labkit/sandbox/wire/webhooks.py); assignable."""
        return self._platform.webhooks.chaos

    @webhook_chaos.setter
    def webhook_chaos(self, chaos: WebhookChaos | None) -> None:
        self._platform.webhooks.chaos = chaos

    @property
    def settings(self) -> WebhookSettings:
        """The application's current webhook settings (read-only view; change with `configure`)."""
        return self._settings

    # ------------------------------------------------------------------ phones and calls

    def phone(self, number: str) -> VirtualPhone:
        """The virtual phone with this number (the same object every time; made on first use)."""
        return self._platform.phone(number)

    def set_phone_defaults(self, answer_after: float | None = None, outcome: str | None = None,
                           hangup_after: Any = UNSET) -> None:
        """How phones made from now on behave (default: answer after 1 s, never hang up)."""
        probe = VirtualPhone(self._platform, "0", **self._platform.phone_defaults)
        probe.set(answer_after=answer_after, outcome=outcome,
                  hangup_after=KEEP if hangup_after is UNSET else hangup_after)
        self._platform.phone_defaults = {"answer_after": probe.answer_after, "outcome": probe.outcome,
                                         "hangup_after": probe.hangup_after}

    def dial(self, from_number: str, to: str | None = None) -> SandboxCall:
        """An inbound call from virtual phone `from_number` to the application's number.

        The application's answer_url gets to, from, uuid, conversation_uuid (and region_url); its NCCO
        then runs. Returns the call (`.uuid`, `.status`, `.wait("answered")`).
        """
        from labkit.sandbox.engine.lifecycle import dial

        if not self.running:
            raise SandboxError("The sandbox is not started: call sandbox.start() first.")
        return dial(self._platform, from_number, to)

    @property
    def calls(self) -> list[SandboxCall]:
        """Every call leg so far, oldest first."""
        with self._platform.lock:
            return list(self._platform.order)

    def call(self, uuid: str) -> SandboxCall:
        """The call leg with this uuid (SandboxError if unknown)."""
        with self._platform.lock:
            leg = self._platform.legs.get(uuid)
        if leg is None:
            raise SandboxError(f"No sandbox call with uuid {uuid}.")
        return leg

    @property
    def webhook_log(self) -> list[WebhookRecord]:
        """The most recent webhooks the platform sent (kind, url, method, payload, result)."""
        return list(self._platform.webhooks.log)

    @property
    def recordings(self) -> dict[str, Path]:
        """Recording files by id (what `GET /v1/files/{id}` serves)."""
        with self._platform.lock:
            return {fid: path for fid, (path, _ctype) in self._platform.files.items()}

    def recording_path(self, url_or_id: str) -> Path:
        """The local file behind a recording_url (or its id), e.g. to load it without HTTP.

        The SDK's `download_recording` refuses URLs without vonage.com/nexmo.com in them, so in
        sandbox mode fetch recordings with this, or with requests and the SDK's JWT (or start the
        sandbox with vonage_hostnames=True, where recording URLs use api.nexmo.com).
        """
        file_id = str(url_or_id).rstrip("/").rsplit("/", 1)[-1]
        path = self.recordings.get(file_id)
        if path is None:
            raise SandboxError(
                f"No sandbox recording {file_id}: it may not be written yet (wait for the record event)."
            )
        return path

    @property
    def clock(self) -> Any:
        """The audio clock (`ticks`, `now()` in call seconds)."""
        return self._platform.clock

    @property
    def platform(self) -> Platform:
        """The platform model (state and behaviour), for tools and tests that need to look inside."""
        return self._platform
