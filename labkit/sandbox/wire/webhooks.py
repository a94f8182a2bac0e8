"""The platform's webhook client: answer, event and instruction requests to the lab, like Vonage sends.

Behaviour copied from the reference (section 3):
- timeouts per webhook: connect 1 s, socket 5 s for answer/fallback and 10 s for events (the application
  defaults; configurable like the Application API's `connection_timeout`/`socket_timeout`). They are real
  seconds, not scaled by the sandbox speed: they are about the lab's server, not the call.
- answer URLs and instruction events are tried twice, then sent to the application's `fallback_answer_url`
  (twice) with the original payload plus `reason` and `original_request {url, type}`, only when the app
  could not be reached or was overloaded: a refused or reset connection, a timeout, HTTP 429, 503 or 504
  (reference section 3, "Fallback" [WH]; the support article [SUP-NCCO] adds: not on 401, 404 or 500). Any
  other answer (a 500 included) is the app's own answer: no retry, no fallback, the call fails.
- status events are retried once on those and on the other 5xx (UNCONFIRMED for Voice: Vonage's Messages
  guide says a 5xx triggers a retry; the troubleshooting guide says "twice" without naming statuses).
- POST sends JSON, GET sends the fields as a query string (nested objects JSON-encoded: UNCONFIRMED).
- with a signature secret, each request carries `Authorization: Bearer <HS256 JWT>` whose
  `payload_hash` is the SHA-256 of the exact body bytes (the empty body for GET: UNCONFIRMED).
- events of one call are delivered in order, one at a time (`OrderedSender`), so `completed` never
  overtakes `answered` even when the lab's handler is slow.
- chaos delivery (`WebhookChaos`, off unless asked for, e.g. `LABKIT_SANDBOX_CHAOS=1` or
  `jitter=0.2,duplicate=0.3,seed=7`): Vonage promises no order and its retries duplicate, so an app
  must cope; with chaos on, each status event goes out after a random delay (0..jitter s, so events
  overtake one another) and is sent twice with probability `duplicate`. Instruction webhooks (whose
  reply the call waits for) keep their order but may be duplicated too; answer webhooks are sent as
  usual (the call waits for their NCCO, and Vonage's own retries are modelled above).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from labkit.sandbox.wire.sessions import SessionPool
from labkit.signing import compact_json, sign_webhook

log = logging.getLogger("labkit.sandbox.wire.webhooks")

# The statuses on which an answer or instruction webhook is tried again and then falls back ([WH], [SUP-NCCO]),
# and those on which a status event is tried again (UNCONFIRMED: see the module docstring).
FALLBACK_STATUSES = frozenset({429, 503, 504})
EVENT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class WebhookSettings:
    """The application's webhook configuration (what the Vonage dashboard's application page holds)."""

    answer_url: str | None = None
    answer_method: str = "GET"
    event_url: str | None = None
    event_method: str = "POST"
    fallback_answer_url: str | None = None
    signature_secret: str | None = None
    connect_timeout: float = 1.0
    answer_timeout: float = 5.0
    event_timeout: float = 10.0
    application_id: str | None = None  # whose webhooks these are (the signed JWT's claim)


@dataclass
class WebhookChaos:
    """Deliver webhooks as a network may: late, out of order, twice (see the module docstring)."""

    jitter: float = 0.2  # seconds: each status event waits a random 0..jitter before it is sent
    duplicate: float = 0.2  # probability that a webhook is delivered twice
    seed: int | None = None

    def __post_init__(self) -> None:
        import random

        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    def delay(self) -> float:
        with self.lock:
            return self.rng.uniform(0.0, self.jitter)

    def twice(self) -> bool:
        with self.lock:
            return self.rng.random() < self.duplicate

    @classmethod
    def parse(cls, text: str | None) -> WebhookChaos | None:
        """'' / '0' / 'off' -> None; '1' / 'on' -> the defaults; 'jitter=0.2,duplicate=0.3,seed=7'."""
        text = (text or "").strip().lower()
        if text in ("", "0", "off", "false", "no"):
            return None
        if text in ("1", "on", "true", "yes"):
            return cls()
        fields: dict[str, Any] = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in ("jitter", "duplicate", "seed"):
                raise ValueError(f"LABKIT_SANDBOX_CHAOS: unknown setting {name!r} (jitter, duplicate, seed)")
            fields[name] = int(value) if name == "seed" else float(value)
        return cls(**fields)


@dataclass
class WebhookResult:
    """What came back from one webhook delivery (after retries and fallback)."""

    url: str
    method: str
    ok: bool
    status: int | None = None
    body: bytes = b""
    error: str | None = None
    attempts: int = 0
    elapsed: float = 0.0

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self.body or not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class WebhookRecord:
    """One delivered webhook, kept in `Sandbox.webhook_log` for debugging."""

    kind: str
    url: str
    method: str
    payload: dict
    result: WebhookResult | None = None
    sent_at: float = field(default_factory=time.time)


def _flatten_query(payload: dict) -> dict[str, str]:
    """A payload as GET query fields. A null field is sent empty (`start_time=&rate=&network=`), not
    dropped: the webhook reference lists `start_time`, `rate` and `network` on `answered` with the
    value "*empty*" (nexmo-developer voice/voice-api/webhook-reference.md, Answered), and the POST form
    carries them as null; an app reading either method finds the same keys."""
    out: dict[str, str] = {}
    for key, value in payload.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class WebhookClient:
    """Sends one webhook with Vonage's timeouts, retry, fallback and signing."""

    def __init__(
        self,
        settings: Callable[[], WebhookSettings],
        *,
        api_key: str,
        application_id: str,
        history: int = 2000,
    ) -> None:
        self._settings = settings
        self._api_key = api_key
        self._application_id = application_id
        self.sessions = SessionPool()  # keep-alive connections to the apps, lent per request (sessions.py)
        self.log: deque[WebhookRecord] = deque(maxlen=history)
        self.closed = False  # set when the sandbox stops: queued webhooks are dropped, not sent
        self.chaos: WebhookChaos | None = None

    def _attempt(self, url: str, method: str, payload: dict, read_timeout: float,
                 cfg: WebhookSettings | None = None) -> requests.Response:
        cfg = cfg or self._settings()
        host = urlsplit(url).hostname or ""
        loopback = host in LOOPBACK_HOSTS
        headers = {"User-Agent": "labkit-sandbox/1.0 (Vonage Voice API emulator)"}
        if method.upper() == "GET":
            params: dict | None = _flatten_query(payload)
            # What Vonage's payload_hash covers for GET: every query parameter, in order (signing.py cites it).
            body = compact_json({**dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)), **params})
            data = None
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
            params = None
            data = body
            headers["Content-Type"] = "application/json"
        if cfg.signature_secret:
            token = sign_webhook(
                body, cfg.signature_secret, api_key=self._api_key,
                application_id=cfg.application_id or self._application_id,
            )
            headers["Authorization"] = f"Bearer {token}"
        sess = self.sessions.borrow(loopback)
        usable = False
        try:
            response = sess.request(
                method.upper(), url, params=params, data=data, headers=headers,
                timeout=(cfg.connect_timeout, read_timeout), allow_redirects=True,
            )
            usable = True
            return response
        finally:  # a session whose request failed midway is never lent again
            self.sessions.give_back(loopback, sess, usable=usable)

    def _try_twice(self, url: str, method: str, payload: dict, read_timeout: float,
                   cfg: WebhookSettings | None = None,
                   retry_statuses: frozenset[int] = FALLBACK_STATUSES) -> WebhookResult:
        result = WebhookResult(url=url, method=method.upper(), ok=False)
        start = time.monotonic()
        for attempt in (1, 2):
            if self.closed:
                result.error = "the sandbox stopped"
                break
            result.attempts = attempt
            try:
                response = self._attempt(url, method, payload, read_timeout, cfg)
            except requests.Timeout as exc:
                result.error = f"timeout ({exc.__class__.__name__})"
                continue
            except requests.ConnectionError as exc:
                result.error = f"connection failed ({exc.__class__.__name__})"
                continue
            except requests.RequestException as exc:
                result.error = f"request failed ({exc})"
                break
            result.status = response.status_code
            result.body = response.content
            if 200 <= response.status_code < 300:
                result.ok = True
                result.error = None
                break
            result.error = f"HTTP {response.status_code}"
            if response.status_code not in retry_statuses:
                break
        result.elapsed = time.monotonic() - start
        return result

    def send(self, kind: str, url: str, method: str, payload: dict, *, fallback: bool = False,
             settings: WebhookSettings | None = None) -> WebhookResult:
        """Deliver `payload`; `kind` is 'answer', 'event' or 'instruction' (which may fall back).

        `settings`: the application whose webhook this is (default: the sandbox's own application).
        """
        cfg = settings or self._settings()
        read_timeout = cfg.answer_timeout if kind == "answer" else cfg.event_timeout
        record = WebhookRecord(kind=kind, url=url, method=method.upper(), payload=payload)
        self.log.append(record)
        retry = EVENT_RETRY_STATUSES if kind == "event" else FALLBACK_STATUSES
        result = self._try_twice(url, method, payload, read_timeout, cfg, retry)
        unreachable = result.status is None or result.status in FALLBACK_STATUSES  # no answer, or overloaded
        if not result.ok and fallback and unreachable and cfg.fallback_answer_url:
            reason = "timeout" if (result.error or "").startswith("timeout") else (result.error or "error")
            fb_payload = dict(payload)
            fb_payload["reason"] = reason
            fb_payload["original_request"] = {"url": url, "type": kind if kind == "answer" else "event"}
            fb_method = cfg.answer_method if kind == "answer" else method
            fb = self._try_twice(cfg.fallback_answer_url, fb_method, fb_payload, cfg.answer_timeout, cfg)
            fb.attempts += result.attempts
            result = fb
        record.result = result
        if not result.ok:
            log.warning("webhook %s %s failed: %s", method.upper(), url, result.error)
        return result


class OrderedSender:
    """Delivers one call leg's webhooks in order on its own thread; `send` returns a Future.

    Fire-and-forget events and instruction events share the queue, so an instruction (whose reply the
    NCCO runner waits for) is never delivered ahead of an earlier status event. The thread exits after
    `idle` seconds without work and is restarted by the next `send`, so ended calls hold no thread.
    """

    def __init__(self, client: WebhookClient, name: str, idle: float = 2.0) -> None:
        self._client = client
        self._name = name
        self._idle = idle
        self._queue: deque[tuple[Future, tuple, dict]] = deque()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._outstanding = 0  # deliveries queued, in flight or waiting out a chaos delay (copies count)

    def send(self, kind: str, url: str, method: str, payload: dict, *, fallback: bool = False,
             settings: WebhookSettings | None = None) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                future.set_result(WebhookResult(url=url, method=method, ok=False, error="sender closed"))
                return future
            self._queue.append((future, (kind, url, method, payload), {"fallback": fallback, "settings": settings}))
            self._outstanding += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"sandbox-hooks-{self._name}",
                                                daemon=True)
                self._thread.start()
            else:
                self._cv.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._closed:
                    self._cv.wait(self._idle)
                if not self._queue:
                    self._thread = None
                    return
                future, args, kwargs = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                self._done()
                continue
            chaos = self._client.chaos
            if chaos is not None:
                self._chaos_send(chaos, future, args, kwargs)
                continue
            self._deliver(future, args, kwargs)

    def _deliver(self, future: Future | None, args: tuple, kwargs: dict) -> None:
        try:
            result = self._client.send(*args, **kwargs)
            if future is not None:
                future.set_result(result)
        except Exception as exc:  # never let one bad webhook stop the call's later events
            log.exception("webhook delivery crashed")
            if future is not None:
                future.set_exception(exc)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._outstanding -= 1

    @property
    def delivered(self) -> bool:
        """Nothing queued, in flight or held back by chaos delivery (a test waits for this at a call's end)."""
        with self._lock:
            return self._outstanding <= 0

    def _chaos_send(self, chaos: WebhookChaos, future: Future, args: tuple, kwargs: dict) -> None:
        """Status events: each copy on its own thread after a random delay; others in order, maybe twice."""
        copies = 2 if chaos.twice() else 1
        if copies == 2:
            with self._lock:
                self._outstanding += 1
        if args[0] != "event":
            self._deliver(future, args, kwargs)
            if copies == 2:
                self._deliver(None, args, kwargs)
            return
        for n in range(copies):
            delay = chaos.delay()

            def later(delay: float = delay, first: bool = n == 0) -> None:
                time.sleep(delay)
                self._deliver(future if first else None, args, kwargs)

            thread = threading.Thread(target=later, name=f"sandbox-chaos-{self._name}", daemon=True)
            with self._lock:
                self._strays = [t for t in getattr(self, "_strays", []) if t.is_alive()] + [thread]
            thread.start()

    @property
    def pending(self) -> int:
        """Webhooks queued and not yet picked up."""
        with self._lock:
            return len(self._queue)

    def close(self, wait: float | None = None) -> None:
        """Refuse new webhooks; queued ones are still sent. `wait` seconds for the thread to finish."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._cv.notify()
        if thread is not None and wait:
            thread.join(wait)
        deadline = time.monotonic() + (wait or 0)
        for stray in list(getattr(self, "_strays", [])):  # chaos deliveries still waiting out their delay
            stray.join(max(0.0, deadline - time.monotonic()) if wait else 0)
