"""Flask app factory for the webhooks the Voice API calls, the audio it fetches, and the call WebSocket.

The app holds no state of its own: everything goes through a `ServerContext` that the Lab builds,
so the same app serves sandbox and live mode.
"""

from __future__ import annotations

import logging
import stat
import traceback
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_file
from werkzeug.security import safe_join

from labkit.events import EventLog

log = logging.getLogger("labkit.server")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
AUDIO_TYPES = {".mp3": "audio/mpeg", ".wav": "audio/wav"}


@dataclass
class ServerContext:
    """What the server needs from the lab: where events go and who decides call scripts."""

    events: EventLog
    answer: Callable[[dict[str, Any]], list[dict[str, Any]]]
    instruction: Callable[[dict[str, Any]], list[dict[str, Any]] | None] = lambda payload: None
    audio_dirs: list[Path] = field(default_factory=list)
    allowed_hosts: set[str] = field(default_factory=lambda: set(LOOPBACK_HOSTS))
    signature_secret: str | None = field(default=None, repr=False)  # a secret: never in a repr or log
    sockets: Any = None  # labkit.server.sockets.SocketHub, when WebSockets are wired in
    browser_audio: Any = None  # labkit.server.browser_audio.BrowserAudioHub: a notebook page's live audio
    mode: str = "sandbox"
    refusals: Any = field(default=None, repr=False)  # labkit.server.limits.Refusals (create_app makes one)
    application_id: str | None = None  # a signed token naming another application is refused
    replays: Any = field(default=None, repr=False)  # labkit.signing.ReplayGuard (create_app makes one)

    def find_audio(self, name: str, extensions: Container[str] | None = None) -> Path | None:
        """The first regular file called `name` in the audio folders whose real path (symlinks resolved)
        is inside that folder, and, with `extensions`, whose suffix is one of them. None otherwise."""
        for folder in self.audio_dirs:
            joined = safe_join(str(folder), name)
            if joined is None:
                continue
            try:
                real = Path(joined).resolve(strict=True)
                root = Path(folder).resolve(strict=True)
            except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte in the name
                continue
            if not real.is_relative_to(root) or not stat.S_ISREG(real.stat().st_mode):
                continue  # a symlink out of the folder (to /etc/passwd...), a device, a folder
            if extensions is not None and real.suffix.lower() not in extensions:
                continue
            return Path(joined)
        return None

    def audio_names(self) -> list[str]:
        names: set[str] = set()
        for folder in self.audio_dirs:
            if Path(folder).is_dir():
                names.update(p.name for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_TYPES)
        return sorted(names)


def _hostname(host_header: str) -> str:
    return host_header.split("]")[0] + "]" if host_header.startswith("[") else host_header.rsplit(":", 1)[0]


def host_allowed(host_header: str, allowed: set[str]) -> bool:
    """DNS-rebinding protection: only loopback names and the tunnel's host may address the lab."""
    return _hostname(host_header).lower() in allowed


def _check_signature(ctx: ServerContext) -> Response | None:
    """Vonage's signed-webhook check (reference/vonage-platform.md, "3. Signed webhooks").

    Unsigned in live mode: 503, because Vonage documents an unsigned callback as its own rare internal
    error and retries on 5xx (and an answer URL only on 429/503/504, not 500: hence 503). Unsigned in
    sandbox mode, forged, tampered, expired or replayed: 401. Each kind is counted, not logged per request.

    The handler then sees only what the signature covers (`g.signed_query`): a query string with a
    repeated name is refused with 400 (the hash covers one value, a handler could read the other), and
    on a POST whose hash covers the body alone, the query's fields are dropped, not merged in.
    """
    from urllib.parse import parse_qsl

    from labkit.errors import SignatureError
    from labkit.signing import payload_hash, verify_webhook, webhook_payloads

    query = parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
    names = [name for name, _ in query]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        ctx.refusals.count("repeated-field", f"{request.method} {request.path}: the query repeats {repeated}")
        return Response(f"Refused: the query string repeats {', '.join(repeated)}; a signed webhook names each "
                        "field once.\n", status=400, mimetype="text/plain")
    payloads = webhook_payloads(request.method, query, request.get_data())
    try:
        claims = verify_webhook(request.headers.get("Authorization"), payloads, ctx.signature_secret or "",
                                application_id=ctx.application_id, replays=ctx.replays)
    except SignatureError as exc:
        unsigned = exc.reason == "missing"
        kind = "unsigned" if unsigned else "replayed" if exc.reason == "replayed" else "bad-signature"
        ctx.refusals.count(kind, f"{request.method} {request.path}: {exc}")
        if unsigned and ctx.mode == "live":
            return Response("Unsigned webhook: answering 503 so that Vonage retries it signed.\n", status=503,
                            mimetype="text/plain")
        return Response(f"Signature check failed: {exc}\n", status=401, mimetype="text/plain")
    # webhook_payloads lists the merged query+body form last, and only when there is a query to merge
    merged = request.method != "GET" and len(payloads) == 3 and isinstance(claims.get("payload_hash"), str) \
        and claims["payload_hash"].lower() == payload_hash(payloads[-1])
    g.signed_query = request.method == "GET" or merged
    if query and not g.signed_query:
        ctx.refusals.count("unsigned-fields", f"{request.method} {request.path}: query fields {names[:5]} are not "
                                              "covered by the signature (dropped)")
    return None


def _payload() -> dict[str, Any]:
    """Webhook fields from a JSON body (POST) or the query string (GET): of a signed webhook, only the
    fields its signature covers (see `_check_signature`)."""
    data: dict[str, Any] = request.args.to_dict() if g.get("signed_query", True) else {}
    if request.method == "POST":
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            data.update(body)
        elif request.form:
            data.update(request.form.to_dict())
    return data


class LabFlask(Flask):
    """Flask, except that an exception in a view is counted (one line per window), not printed.

    Flask logs every unhandled exception with its traceback to `wsgi.errors`, which a2wsgi points at
    sys.stdout: into the notebook's output, once per request, for anyone who can make a view fail."""

    def log_exception(self, exc_info) -> None:  # type: ignore[override]
        ctx: ServerContext = self.extensions["labkit"]
        exc = exc_info[1]
        where = traceback.extract_tb(exc_info[2])[-1] if exc_info[2] is not None else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where is not None else ""
        ctx.refusals.count("server-error", f"{request.method} {request.path[:200]!r} raised "
                                           f"{type(exc).__name__}: {str(exc)[:200]}{at} (answered 500)")


def create_app(ctx: ServerContext) -> Flask:
    """Build the app. Routes: /webhooks/answer, /webhooks/event, /audio/<name>, /healthz.

    `/socket` is not a Flask route: `ServerRunner` serves it as a native ASGI WebSocket on the same port."""
    app = LabFlask("labkit")
    # Not in app.config: config dumps are printed and logged, and the context holds the signature secret.
    app.extensions["labkit"] = ctx
    if ctx.refusals is None:
        from labkit.server.limits import Refusals

        ctx.refusals = Refusals(ctx.events.add)
    if ctx.replays is None:
        from labkit.signing import ReplayGuard

        ctx.replays = ReplayGuard()

    @app.before_request
    def check_host_and_signature() -> Response | None:
        # DNS-rebinding protection: only loopback names and the tunnel's host may address us.
        if not host_allowed(request.host or "", ctx.allowed_hosts):
            host = _hostname(request.host or "")
            ctx.refusals.count("bad-host", f"Host {host!r} is not allowed")
            return Response(f"Host {host!r} is not allowed: the lab only answers to loopback names "
                            "and its tunnel.\n", status=403, mimetype="text/plain")
        if "\x00" in request.path or "\ufffd" in request.path:  # a NUL, or bytes that are not UTF-8
            ctx.refusals.count("bad-path", f"{request.method} {request.path[:200]!r}: a NUL byte or bytes that "
                                           "are not UTF-8 in the path")
            return Response("Not found.\n", status=404, mimetype="text/plain")
        if ctx.signature_secret and request.path.startswith("/webhooks/"):
            return _check_signature(ctx)
        return None

    @app.route("/webhooks/answer", methods=["GET", "POST"])
    def answer() -> Response:
        payload = _payload()
        ctx.events.add("answer", payload)
        try:
            ncco = ctx.answer(payload)
        except Exception as exc:  # the user's handler: report it where they look, and fail the call
            ctx.events.add("lab", {"uuid": payload.get("uuid"), "status": "answer-handler-error",
                                   "reason": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc(limit=5)})
            return Response(f"answer handler failed: {exc}\n", status=500, mimetype="text/plain")
        return jsonify(ncco)

    @app.route("/webhooks/event", methods=["GET", "POST"])
    def event() -> Response:
        payload = _payload()
        ctx.events.add("event", payload)
        try:
            ncco = ctx.instruction(payload)
        except Exception as exc:
            ctx.events.add("lab", {"uuid": payload.get("uuid"), "status": "event-handler-error",
                                   "reason": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc(limit=5)})
            return Response(status=204)
        if ncco is None:
            return Response(status=204)
        return jsonify(ncco)

    @app.get("/audio/<path:name>")
    def audio(name: str) -> Response:
        path = ctx.find_audio(name, AUDIO_TYPES)  # only .mp3/.wav: the formats Vonage streams
        if path is None:
            available = ", ".join(ctx.audio_names()) or "none"
            return Response(f"No audio file {name!r} in the lab's audio folders. Available: {available}.\n",
                            status=404, mimetype="text/plain")
        mime = AUDIO_TYPES[path.resolve().suffix.lower()]
        # conditional=True gives ETag/Last-Modified and Range (206) support.
        return send_file(path, mimetype=mime, conditional=True, max_age=60)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"ok": True, "service": "labkit", "mode": ctx.mode})

    @app.errorhandler(405)
    def not_allowed(_exc) -> tuple[str, int]:
        return f"{request.method} is not allowed on {request.path}\n", 405

    return app
