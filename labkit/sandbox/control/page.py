"""The softphone page at the sandbox's `/`: its virtual phones in a browser, for apps in any language.

The page and its scripts are files in `labkit/widgets/static/` (the one front end the notebook widgets
also use: `callaudio.js` plays the call and sends the microphone; `wstransport.js` connects it to the
phone's audio WebSocket, phone_audio.py; `sandbox.js` draws the phones). They are served here, on the
control API's origin and under its rule (loopback, or the application's JWT), so the page's requests to
`/_labkit/` are same-origin.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response

from labkit.errors import SandboxNotFound
from labkit.sandbox.control.routes import PREFIX

STATIC = Path(__file__).resolve().parents[2] / "widgets" / "static"  # labkit/widgets/static
PAGE = "sandbox.html"
TYPES = {".js": "text/javascript", ".html": "text/html", ".css": "text/css", ".svg": "image/svg+xml"}


def page_file(name: str) -> tuple[bytes, str]:
    """One of the page's files (a name in the static folder, nothing else), and its content type."""
    path = STATIC / name
    if "/" in name or "\\" in name or path.suffix not in TYPES or not path.is_file():
        raise SandboxNotFound(f"The softphone page has no file {name!r}.")
    return path.read_bytes(), TYPES[path.suffix]


def install(app: Flask) -> None:
    """`GET /` (the page) and `GET /_labkit/page/<name>` (its scripts); authorised like `/_labkit/`."""

    def index() -> Response:
        data, ctype = page_file(PAGE)
        return Response(data, mimetype=ctype, headers={"Cache-Control": "no-cache"})

    def static(name: str) -> Response:
        data, ctype = page_file(name)
        return Response(data, mimetype=ctype, headers={"Cache-Control": "no-cache"})

    def favicon() -> Response:
        data, _ctype = page_file("favicon.svg")  # browsers ask /favicon.ico whatever the page links
        return Response(data, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    app.add_url_rule("/", "labkit_page", index, methods=["GET"])
    app.add_url_rule("/favicon.ico", "labkit_favicon", favicon, methods=["GET"])
    app.add_url_rule(f"{PREFIX}page/<name>", "labkit_page_file", static, methods=["GET"])
