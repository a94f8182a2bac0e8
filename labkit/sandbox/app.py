"""The sandbox's HTTPS app, as Flask's app factory: the emulated Vonage APIs (Voice, Application,
Numbers) and the emulator's own control surface and page on one port, each request authenticated as
its surface requires (the Voice API: an application's JWT; the account APIs: HTTP Basic, per route; the
control API and page: loopback or the JWT), and errors written as Vonage writes them.

It sits above `apis` and `control`, which never import each other: like moto's server, which mounts each
service's `urls.py` and `moto_api` side by side.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from labkit.errors import SandboxApiError
from labkit.sandbox.apis import voice_routes
from labkit.sandbox.apis.account_routes import accounts_blueprint, application_error, is_application_path
from labkit.sandbox.apis.auth import AppCredentials, verify_application_jwt
from labkit.sandbox.control import page, routes
from labkit.sandbox.engine.exceptions import internal_error_response, problem_response
from labkit.sandbox.engine.platform import Platform

log = logging.getLogger("labkit.sandbox.http")


def note_control_host(p: Platform, uuid: str, host: str) -> None:
    """Count a Voice API request about call `uuid` under the host it was sent to (engine/regions.py)."""
    with p.lock:
        leg = p.legs.get(uuid)
        if leg is not None:
            key = host.lower()
            leg.control_hosts[key] = leg.control_hosts.get(key, 0) + 1


def create_app(p: Platform, creds: AppCredentials) -> Flask:
    """The sandbox's Flask app for `p`, accepting JWTs signed by `creds`' private key."""
    app = Flask("labkit.sandbox")
    app.config["JSON_SORT_KEYS"] = False

    app.register_blueprint(accounts_blueprint(p.account))

    @app.before_request
    def authenticate() -> None:
        if request.blueprint == "accounts" or is_application_path(request.path):
            return  # HTTP Basic, checked by each account route (a method no route takes: 405, not 401)
        if request.path.startswith(routes.PREFIX) or request.path in ("/", "/favicon.ico"):  # control, page
            routes.authorize(request, creds)
            return
        g.claims = verify_application_jwt(request.headers.get("Authorization"), p.account.public_key)
        uuid = (request.view_args or {}).get("uuid")
        if uuid is not None:  # calls are per application: another application's call is not found
            p.account.check_leg(p, uuid, g.claims.get("application_id"))
            note_control_host(p, uuid, request.host)
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
        if is_application_path(request.path):  # Application API spec: InvalidRequestMethod, NotFoundError
            if code == 405:
                return application_error(405, f"Request method '{request.method}' not supported")
            if code == 404:
                return application_error(404, f"{request.path} does not exist, or you do not have access")
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

    voice_routes.install(app, p)  # /v1/calls, /v1/files: the Voice API
    routes.install(app, p)  # /_labkit/: the sandbox's own control API
    page.install(app)  # /: the softphone page (static/sandbox.html)
    return app
