"""REST handlers: routing, JWT check and wire format only; the work is in api.py and platform.py.

Routes (all need `Authorization: Bearer <RS256 JWT>` from the sandbox application's key):

    POST   /v1/calls                   201 {uuid, status, direction, conversation_uuid}
    GET    /v1/calls                   200 paged list with _links and _embedded.calls
    GET    /v1/calls/{uuid}            200 CallObj
    PUT    /v1/calls/{uuid}            204 hangup, mute, unmute, earmuff, unearmuff, transfer
    PUT    /v1/calls/{uuid}/stream     200 {"message": "Stream started", "uuid"}
    DELETE /v1/calls/{uuid}/stream     200 {"message": "Stream stopped", "uuid"}
    PUT    /v1/calls/{uuid}/talk       200 {"message": "Talk started", "uuid"}
    DELETE /v1/calls/{uuid}/talk       200 {"message": "Talk stopped", "uuid"}
    PUT    /v1/calls/{uuid}/dtmf       200 {"message": "DTMF sent", "uuid"}
    PUT    /v1/calls/{uuid}/input/dtmf 200 (asynchronous DTMF listener, api_input.py)
    DELETE /v1/calls/{uuid}/input/dtmf 200
    GET    /v1/files/{id}              200 the recording (audio/mpeg, audio/wav or audio/ogg)

The Application API (/v2/applications) and Numbers API (/account/numbers, /number/update) use HTTP
Basic instead: see responses_accounts.py. A JWT of any of the account's applications is accepted here.
and the sandbox's own control API under /_labkit/ (control_http.py; loopback, or the JWT).
"""

from __future__ import annotations

import io
import json
import logging
import socket
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from labkit.errors import SandboxApiError
from labkit.sandbox.apis import voice as api
from labkit.sandbox.apis import voice_input as api_input
from labkit.sandbox.apis.auth import AppCredentials, verify_application_jwt
from labkit.sandbox.control import page as control_page
from labkit.sandbox.control import routes as control_http
from labkit.sandbox.engine.exceptions import internal_error_response, invalid, problem_response
from labkit.sandbox.engine.platform import Platform

log = logging.getLogger("labkit.sandbox.http")


class QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive, TCP_NODELAY and no per-request log lines.

    Why not werkzeug's own `run_wsgi`: it closes every connection, so each SDK call paid a new TLS
    handshake plus loading the whole CA bundle on the client (~60 ms per call with the system bundle,
    measured), and its responses met Nagle's algorithm. Here the request body is read completely
    before the app runs (so the next request on the connection is never mis-read), the response is
    sent with a Content-Length, and the connection stays open until the client closes it, it is idle
    for `timeout` seconds, or the sandbox stops (which shuts tracked connections down).
    """

    timeout = 15  # seconds an idle keep-alive connection is kept

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.__dict__.setdefault("labkit_connections", set()).add(self.connection)

    def finish(self) -> None:
        tracked = getattr(self.server, "labkit_connections", None)
        if tracked is not None:
            tracked.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        try:
            if environ.get("wsgi.input_terminated"):  # chunked upload: werkzeug de-chunks it
                body = environ["wsgi.input"].read()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        except (OSError, ValueError):
            self.close_connection = True
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        state: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("early", []).append(data)

        result = self.server.app(environ, start_response)
        try:
            payload = b"".join([*state.get("early", []), *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        code, _, reason = state["status"].partition(" ")
        self.send_response(int(code), reason)
        for key, value in state["headers"]:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        if int(code) not in (204, 304) and not 100 <= int(code) < 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and int(code) not in (204, 304):
            self.wfile.write(payload)
        self.wfile.flush()

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        if type == "error":
            log.debug(message, *args)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _body() -> Any:
    raw = request.get_data(cache=True)
    if not raw or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid("body", "Invalid JSON body", "the request body is not valid JSON") from None


def create_app(p: Platform, creds: AppCredentials) -> Flask:
    """The sandbox's Flask app for `p`, accepting JWTs signed by `creds`' private key."""
    app = Flask("labkit.sandbox")
    app.config["JSON_SORT_KEYS"] = False

    from labkit.sandbox.apis.account_routes import accounts_blueprint

    app.register_blueprint(accounts_blueprint(p.account))

    @app.before_request
    def authenticate() -> None:
        if request.blueprint == "accounts":
            return  # HTTP Basic, checked by each account route
        if request.path.startswith(control_http.PREFIX) or request.path == "/":  # control API, page: loopback/JWT
            control_http.authorize(request, creds)
            return
        g.claims = verify_application_jwt(request.headers.get("Authorization"), p.account.public_key)
        uuid = (request.view_args or {}).get("uuid")
        if uuid is not None:  # calls are per application: another application's call is not found
            p.account.check_leg(p, uuid, g.claims.get("application_id"))
        file_id = (request.view_args or {}).get("file_id")
        if file_id is not None:
            p.account.check_file(file_id, g.claims.get("application_id"))

    @app.errorhandler(SandboxApiError)
    def api_error(err: SandboxApiError) -> Response:
        body, status, headers = problem_response(err)
        return Response(body, status=status, headers=headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        code = err.code or 500
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(code, err.name)
        mapped = SandboxApiError(f"{request.method} {request.path} is not part of the Voice API: {err.description}")
        mapped.status = code
        mapped.title = title
        body, status, headers = problem_response(mapped)
        return Response(body, status=status, headers=headers)

    @app.errorhandler(Exception)
    def crash(err: Exception) -> Response:
        log.exception("sandbox REST handler failed")
        body, status, headers = internal_error_response()
        return Response(body, status=status, headers=headers)

    @app.post("/v1/calls")
    def create_call() -> Response:
        return _json(api.create_call(p, _body(), application_id=g.claims.get("application_id")), 201)

    @app.get("/v1/calls")
    def list_calls() -> Response:
        return _json(api.list_calls(p, request.args.to_dict(), application_id=g.claims.get("application_id")))

    @app.get("/v1/calls/<uuid>")
    def get_call(uuid: str) -> Response:
        return _json(api.get_call(p, uuid))

    @app.put("/v1/calls/<uuid>")
    def update_call(uuid: str) -> Response:
        api.update_call(p, uuid, _body())
        return Response(status=204)

    @app.put("/v1/calls/<uuid>/stream")
    def start_stream(uuid: str) -> Response:
        return _json(api.start_stream(p, uuid, _body()))

    @app.delete("/v1/calls/<uuid>/stream")
    def stop_stream(uuid: str) -> Response:
        return _json(api.stop_stream(p, uuid))

    @app.put("/v1/calls/<uuid>/talk")
    def start_talk(uuid: str) -> Response:
        return _json(api.start_talk(p, uuid, _body()))

    @app.delete("/v1/calls/<uuid>/talk")
    def stop_talk(uuid: str) -> Response:
        return _json(api.stop_talk(p, uuid))

    @app.put("/v1/calls/<uuid>/dtmf")
    def send_dtmf(uuid: str) -> Response:
        return _json(api.send_dtmf(p, uuid, _body()))

    @app.put("/v1/calls/<uuid>/input/dtmf")
    def add_dtmf_listener(uuid: str) -> Response:
        api_input.add_dtmf_listener(p, uuid, _body())
        return Response(status=200)

    @app.delete("/v1/calls/<uuid>/input/dtmf")
    def remove_dtmf_listener(uuid: str) -> Response:
        api_input.remove_dtmf_listener(p, uuid)
        return Response(status=200)

    @app.get("/v1/files/<file_id>")
    def get_file(file_id: str) -> Response:
        data, ctype = api.get_file(p, file_id)
        return Response(data, mimetype=ctype)

    control_http.install(app, p)  # /_labkit/: the sandbox's own control API
    control_page.install(app)  # /: the softphone page (static/sandbox.html)
    return app
