"""The control API over HTTP: routes under `/_labkit/` on the sandbox's own server (JSON in and out,
audio as WAV bytes). The work is in actions.py; the description is openapi.py.

Access: from loopback (127.0.0.0/8, ::1) without credentials, like a local test server; from anywhere
else only with the sandbox application's JWT (`Authorization: Bearer ...`, as the Voice API takes).
Errors are the same RFC 7807 bodies as the Voice API's (exceptions.py): 400 bad input, 404 unknown phone
or call, 409 when the phone's state does not allow it (answering an idle phone, dialling while busy).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, request

from labkit.errors import InvalidInput, LabkitError, SandboxApiError, SandboxError
from labkit.sandbox.apis.auth import AppCredentials, verify_request_jwt
from labkit.sandbox.control import actions as control
from labkit.sandbox.engine.platform import Platform

PREFIX = "/_labkit/"
MAX_JSON_BYTES = 1024 * 1024  # the control API's JSON bodies are small; the sandbox's own bound
MAX_AUDIO_BYTES = 32 * 1024 * 1024  # a say body: 300 s of 48 kHz 16-bit stereo WAV fits (MAX_QUEUED_SECONDS)
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/mp3", "application/octet-stream")


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def authorize(req: Request, creds: AppCredentials) -> None:
    """Loopback callers pass; others need the application's JWT (401 otherwise)."""
    if not is_loopback(req.remote_addr):
        verify_request_jwt(req.headers.get("Authorization"), creds)


def _api_error(err: LabkitError) -> SandboxApiError:
    mapped = SandboxApiError(str(err))
    if isinstance(err, InvalidInput):
        mapped.status, mapped.title = 400, "Bad Request"
    else:
        mapped.status, mapped.title = 409, "Conflict"
    return mapped


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _not_json(const: str) -> Any:
    raise InvalidInput(f"the request body has {const}: JSON numbers are finite (NaN and Infinity are not JSON)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"the request body has {text}, which is not a finite number")
    return value


def _body() -> Any:
    """The JSON body (an empty body is {}): strict JSON, so NaN, Infinity and 1e400 are refused (Python's
    json module would read them as floats that no other language's client could have meant)."""
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise InvalidInput(f"the request body is over {MAX_JSON_BYTES // 1024} KB")
    raw = request.get_data(cache=True)
    if not raw or not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except ValueError as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("the request body is not valid JSON") from None


def _errors(view: Callable[..., Response]) -> Callable[..., Response]:
    """Labkit errors from the model become RFC 7807 answers (400/404/409) instead of a 500."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except SandboxApiError:
            raise
        except (InvalidInput, SandboxError) as err:
            raise _api_error(err) from None

    return wrapper


def install(app: Flask, p: Platform) -> None:
    """Add the `/_labkit/` routes to the sandbox's Flask app (authorisation is in its before_request)."""
    from labkit.sandbox.control.openapi import openapi

    def route(rule: str, methods: list[str]) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        def register(view: Callable[..., Response]) -> Callable[..., Response]:
            app.add_url_rule(PREFIX.rstrip("/") + rule, f"labkit_{view.__name__}", _errors(view), methods=methods)
            return view

        return register

    @route("/openapi.json", ["GET"])
    def spec() -> Response:
        return _json(openapi(p.base_url))

    @route("/application", ["GET"])
    def application() -> Response:
        return _json(control.application(p))

    @route("/phones", ["GET"])
    def list_phones() -> Response:
        return _json(control.list_phones(p))

    @route("/phones", ["POST"])
    def put_phone() -> Response:
        view, created = control.put_phone(p, _body())
        return _json(view, 201 if created else 200)

    @route("/phones/<number>", ["GET"])
    def get_phone(number: str) -> Response:
        args = request.args
        return _json(control.get_phone(p, number, wait=args.get("wait"), state=args.get("state"),
                                       calls=args.get("calls")))

    @route("/phones/<number>/dial", ["POST"])
    def dial(number: str) -> Response:
        return _json(control.dial(p, number, _body()), 201)

    def _act(number: str, what: str) -> Response:
        phone = control.find_phone(p, number)
        getattr(phone, what)()
        return _json(control.phone_view(phone))

    @route("/phones/<number>/answer", ["POST"])
    def answer(number: str) -> Response:
        return _act(number, "answer")

    @route("/phones/<number>/reject", ["POST"])
    def reject(number: str) -> Response:
        return _act(number, "reject")

    @route("/phones/<number>/hangup", ["POST"])
    def hangup(number: str) -> Response:
        return _act(number, "hangup")

    @route("/phones/<number>/press", ["POST"])
    def press(number: str) -> Response:
        return _json(control.press(p, number, _body()))

    @route("/phones/<number>/say", ["POST"])
    def say(number: str) -> Response:
        ctype = (request.mimetype or "").lower()
        if ctype in AUDIO_TYPES:
            control.find_phone(p, number)  # 404 before the body is read
            if (request.content_length or 0) > MAX_AUDIO_BYTES:
                raise InvalidInput(f"the audio is over {MAX_AUDIO_BYTES // (1024 * 1024)} MB")
            return _json(control.say(p, number, text=request.args.get("text"), audio=request.get_data()))
        body = _body()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise InvalidInput('say needs {"text": "..."} or a WAV/MP3 body (Content-Type audio/wav or audio/mpeg)')
        return _json(control.say(p, number, text=text, audio=None))

    @route("/phones/<number>/heard.wav", ["GET"])
    def heard(number: str) -> Response:
        wav, start, end = control.heard_wav(p, number, since=request.args.get("since"),
                                            call=request.args.get("call"), wait=request.args.get("wait"))
        return Response(wav, mimetype="audio/wav", headers={
            "X-Labkit-Start": str(start), "X-Labkit-Position": str(end), "X-Labkit-Rate": "16000",
            "X-Labkit-Time": str(int(time.time() * 1000)), "Cache-Control": "no-store"})

    def audio(number: str) -> Response:
        from labkit.sandbox.control import phone_audio

        phone = control.find_phone(p, number)  # 404 before the upgrade
        phone_audio.serve(p, phone, request.environ, request.headers)
        return Response(status=204)  # never written: the socket was the WebSocket's (see phone_audio.TAKEN)

    # werkzeug routes a WebSocket request only to a rule marked websocket=True (else 400); the plain rule
    # answers a plain GET with a problem that says what the URL is
    for ws in (True, False):
        app.add_url_rule(f"{PREFIX}phones/<number>/audio", f"labkit_audio{'_ws' * ws}", _errors(audio),
                         methods=["GET"], websocket=ws)

    @route("/calls", ["GET"])
    def list_calls() -> Response:
        return _json(control.list_calls(p))

    @route("/calls/<uuid>", ["GET"])
    def get_call(uuid: str) -> Response:
        return _json(control.get_call(p, uuid, wait=request.args.get("wait"), until=request.args.get("until")))

    @route("/webhooks", ["GET"])
    def webhooks() -> Response:
        return _json(control.webhooks(p))

    @route("/reset", ["POST"])
    def reset() -> Response:
        return _json(control.reset(p))
