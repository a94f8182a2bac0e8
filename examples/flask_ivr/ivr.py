"""A small Flask IVR for the Vonage Voice API: "press 1 for music, 2 to talk to the bot".

    GET  /answer   the answer NCCO: a greeting you can interrupt, then a one-key DTMF input
    POST /input    the key: 1 -> music (a REST stream into the call), 2 -> the bot (a REST transfer)
    POST /ready    a `notify` from the NCCO once the announcement is over: starts the stream or transfer
    GET  /bot      the NCCO the call is transferred to
    POST /event    call events (kept in app.config["EVENTS"])
    GET  /static/music.mp3

Settings come from the environment, as in production: VONAGE_APPLICATION_ID, VONAGE_PRIVATE_KEY (a path),
VONAGE_SIGNATURE_SECRET (webhooks must carry a valid signed JWT when set) and VONAGE_API_HOST (default
Vonage's). Run it with `flask --app ivr run`; test it with `pytest` (test_ivr.py, the labkit plugin).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, abort, jsonify, request

GREETING = "Welcome to Acme. Press 1 for music, or 2 to talk to our bot."
MUSIC_INTRO = "Here is some music while you wait."
BOT_INTRO = "Connecting you to our bot."
BOT_GREETING = "Hi, I am the Acme bot. Thanks for calling. Goodbye."
SORRY = "Sorry, I did not get that. Goodbye."


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """The IVR, configured from `env` (default: os.environ)."""
    env = dict(os.environ if env is None else env)
    app = Flask(__name__, static_folder="static")
    app.config["EVENTS"] = []
    secret = env.get("VONAGE_SIGNATURE_SECRET")

    def vonage() -> Any:
        from vonage import Auth, HttpClientOptions, Vonage

        return Vonage(Auth(application_id=env["VONAGE_APPLICATION_ID"], private_key=env["VONAGE_PRIVATE_KEY"]),
                      HttpClientOptions(api_host=env.get("VONAGE_API_HOST", "api.nexmo.com"), timeout=10))

    def later(work: Any, *args: Any) -> None:
        """REST calls go out after the webhook is answered, as Vonage expects a quick answer."""
        threading.Thread(target=work, args=args, daemon=True).start()

    @app.before_request
    def check_signature() -> None:
        """Refuse webhooks that are not signed by Vonage (signed_callbacks on the application)."""
        if not secret or request.path.startswith("/static/"):
            return
        from vonage_jwt.verify_jwt import verify_signature

        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or not verify_signature(token, secret):
            abort(401)

    @app.get("/answer")
    def answer() -> Response:
        return jsonify([
            {"action": "talk", "text": GREETING, "bargeIn": True},
            {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 1, "timeOut": 5},
             "eventUrl": [request.host_url + "input"]},
        ])

    @app.post("/input")
    def on_input() -> Response:
        body = request.get_json(force=True)
        digits = (body.get("dtmf") or {}).get("digits") or ""
        uuid = body["uuid"]
        if digits not in ("1", "2"):
            return jsonify([{"action": "talk", "text": SORRY}])
        step, intro = ("music", MUSIC_INTRO) if digits == "1" else ("bot", BOT_INTRO)
        return jsonify([
            {"action": "talk", "text": intro},
            {"action": "notify", "payload": {"step": step, "uuid": uuid}, "eventUrl": [request.host_url + "ready"]},
            {"action": "conversation", "name": f"hold-{uuid}"},  # keeps the caller on the line meanwhile
        ])

    @app.post("/ready")
    def ready() -> Response:
        payload = request.get_json(force=True)
        uuid = payload["uuid"]
        base = request.host_url
        if payload.get("step") == "music":
            later(start_music, uuid, base + "static/music.mp3")
        else:
            later(transfer_to_bot, uuid, base + "bot")
        return Response(status=204)

    def start_music(uuid: str, url: str) -> None:
        from vonage_voice import AudioStreamOptions

        vonage().voice.play_audio_into_call(uuid, AudioStreamOptions(stream_url=[url], loop=1))

    def transfer_to_bot(uuid: str, url: str) -> None:
        vonage().voice.transfer_call_answer_url(uuid, url)

    @app.get("/bot")
    @app.post("/bot")
    def bot() -> Response:
        return jsonify([{"action": "talk", "text": BOT_GREETING}])

    @app.post("/event")
    def event() -> Response:
        app.config["EVENTS"].append(request.get_json(force=True))
        return Response(status=204)

    return app


if __name__ == "__main__":  # pragma: no cover
    create_app().run(port=int(os.environ.get("PORT", "3000")))
