"""A user's app for the plugin's tests: a Flask app on a real port whose answer NCCO each test sets, and
which keeps every webhook it got (with headers, to check signatures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request, send_from_directory

from labkit.testing.apps import serve

AUDIO = Path(__file__).resolve().parents[2] / "audio"


class UserApp:
    """What a user's voice app looks like to the plugin: answer and event URLs, and audio it serves."""

    def __init__(self) -> None:
        self.ncco: list[dict] = [{"action": "talk", "text": "Hello"}]
        self.hooks: list[dict[str, Any]] = []
        self.url = ""
        self.flask = Flask("user-app")

        @self.flask.route("/audio/<name>")
        def audio(name: str) -> Response:
            return send_from_directory(AUDIO, name)

        @self.flask.route("/<path:hook>", methods=["GET", "POST"])
        def webhook(hook: str) -> Response:
            self.hooks.append({"path": hook, "headers": dict(request.headers),
                               "payload": request.get_json(silent=True) or dict(request.args)})
            if hook == "answer":
                return jsonify(_fill(self.ncco, self.url))
            return Response(status=204)


def _fill(value: Any, url: str) -> Any:
    """The NCCO with "{url}" replaced by the app's base URL."""
    if isinstance(value, str):
        return value.replace("{url}", url)
    if isinstance(value, list):
        return [_fill(v, url) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, url) for k, v in value.items()}
    return value


@pytest.fixture
def user_app(vonage_app: Any) -> Iterator[UserApp]:
    """The app, served, with the sandbox application pointed at it through the Application API."""
    app = UserApp()
    with serve(app.flask) as url:
        app.url = url
        vonage_app(answer_url=f"{url}/answer", event_url=f"{url}/event")
        yield app
