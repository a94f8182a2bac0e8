"""HTTP for the account APIs: the Application API v2 and the Numbers API, as Vonage serves them.

Routes (HTTP Basic with the account's API key and secret; the state is in accounts.py):

    GET    /v2/applications?page_size=&page=   200 {page_size, page, total_items, total_pages, _embedded, _links}
    POST   /v2/applications                    201 the application (+ keys.private_key when made here)
    GET    /v2/applications/{id}               200 the application
    PUT    /v2/applications/{id}               200 the application
    DELETE /v2/applications/{id}               204 no body
    GET    /v1/applications?page_size=&page_index=  200 {count, page_size, page_index, _embedded, _links}
    POST   /v1/applications                    201 the v1 application (+ keys.private_key): application_v1.py
    GET|PUT|DELETE /v1/applications/{id}       200 / 200 / 204, over the same applications as v2
    GET    /account/numbers                    200 {count, numbers: [...]}
    POST   /number/update                      200 {"error-code": "200", "error-code-label": "success"}

Wire details from `/work/shared/reference/vonage-platform.md` sections 1-2 ([OAS-APP], [OAS-NUM],
[PY-TESTS]). Application API errors are the bodies of the Application API spec v2.4.1
(`components/responses`: InvalidPayloadError, BadCredentialsError, NotFoundError, InvalidRequestMethod,
InvalidAcceptHeader, UnsupportedContentTypeHeader): `{type, title, detail, instance}` (+
`invalid_parameters` on 400) served as `application/json`, which is the content type the spec gives
every one of them (not `application/problem+json` as the Voice API's [DOC-ERR]); the `type` URIs and
titles are the spec's examples (`APP_ERRORS` below). 406 when `Accept` excludes JSON, 415 when a body
is not JSON; `page_size` 1-100 (400 `#list-validation`). Numbers API errors use `{"error-code",
"error-code-label"}`: 401 "authentication failed"; 420 "method failed" for an update that cannot be
done (observed [CLI-ISS233]). UNCONFIRMED: the 400 body for a missing form field (the sandbox uses the
same `error-code` shape), and `{"count": 0}` for no numbers (the SDK reads a missing `numbers` as none).
Numbers also accept `api_key`/`api_secret` as parameters, as the 2021 spec documented [OAS-2021].
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, request

from labkit.sandbox.apis import application_v1 as v1
from labkit.sandbox.apis.accounts import Account, ApplicationProblem

# Application API v2.4.1 spec, components/responses: (type, title) of each error, all `application/json`
ERRORS = "https://developer.vonage.com/api-errors"
APP_ERRORS: dict[int, tuple[str, str]] = {
    400: (ERRORS + "/application#payload-validation", "Bad Request"),
    401: (ERRORS + "#unauthorized", "Invalid credentials supplied"),
    404: (ERRORS + "#not-found", "Not Found"),
    405: (ERRORS + "#wrong-verb", "Request method not allowed"),
    406: (ERRORS + "#accept-header", "Invalid Accept header"),
    415: (ERRORS + "#content-type-header", "Unsupported Content-Type header"),
}
APP_ERROR_TYPE = "application/json"  # the spec's content type for every Application API error


def _problem(status: int, detail: str, invalid_parameters: list[dict] | None = None, *,
             list_validation: bool = False) -> Response:
    kind, title = APP_ERRORS.get(status, (ERRORS, "Error"))
    body: dict[str, Any] = {"type": kind, "title": title, "detail": detail, "instance": str(uuid.uuid4())}
    if list_validation:
        body["type"] = ERRORS + "/application#list-validation"
    if invalid_parameters:
        body["invalid_parameters"] = invalid_parameters
    return Response(json.dumps(body), status=status, mimetype=APP_ERROR_TYPE)


def application_error(status: int, detail: str) -> Response:
    """An Application API error as the spec writes it (for the app's own 404/405 on these paths)."""
    return _problem(status, detail)


def is_application_path(path: str) -> bool:
    return path.rstrip("/") in ("/v1/applications", "/v2/applications") or path.startswith(
        ("/v1/applications/", "/v2/applications/"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _numbers_error(code: int, label: str) -> Response:
    return _json({"error-code": str(code), "error-code-label": label}, code)


def basic_credentials() -> tuple[str | None, str | None]:
    """(api_key, api_secret) from `Authorization: Basic ...`, else (None, None)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None, None
    try:
        key, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return key, secret


_JSON_BODY = "\x00json"  # a key no form field has: the body was JSON


def _form_fields() -> dict[str, str]:
    """The form body of /number/update: `application/x-www-form-urlencoded` is the only body the Numbers
    spec gives it [OAS-NUM], and the SDKs send a form [PY-NUM], [NODE:numbers.ts]. The body is read as a
    form whatever its label: the Python SDK (vonage_http_client 1.5.2) keeps the `Content-Type:
    application/json` of an earlier JSON request on its shared headers, so its form bodies may arrive
    labelled JSON. Query-string fields are read too: the `nexmo` 2.x Node package (2.4.2,
    `updateNumber`) sends them there, on a POST with no body. A JSON object is not a form and yields
    no fields (`_JSON_BODY` marks it, for the error's words). What Vonage answers to a JSON body:
    UNCONFIRMED (400 "missing parameter" here)."""
    fields = dict(request.args.items())  # the nexmo 2.x Node package posts them in the query string
    if request.form:
        return {**fields, **request.form.to_dict()}
    raw = request.get_data(as_text=True).strip()
    if raw.startswith(("{", "[")):
        return {**fields, _JSON_BODY: "1"}
    return {**fields, **dict(parse_qsl(raw, keep_blank_values=True))}


def _accepts_json() -> bool:
    accept = request.headers.get("Accept")
    return not accept or any(t in accept for t in ("application/json", "application/*", "*/*", "+json"))


def accounts_blueprint(account: Account) -> Blueprint:
    """The Application and Numbers APIs over `account`."""
    bp = Blueprint("accounts", __name__)

    # -- Application API ---------------------------------------------------------------------
    def app_guard() -> Response | None:
        if not account.check_basic(*basic_credentials()):
            return _problem(401, "You did not provide correct credentials.")
        if not _accepts_json():
            return _problem(406, "Invalid Accept header provided. Must be one of the following: 'application/json'")
        if request.method in ("POST", "PUT") and not (request.mimetype or "").endswith("json"):
            return _problem(415, "Unsupported Content-Type header provided. Must be one of the following: "
                                 "'application/json'")
        return None

    def app_body() -> Any:
        try:
            return json.loads(request.get_data() or b"null")
        except ValueError:
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     [{"name": "body", "reason": "is not valid JSON"}]) from None

    def run(fn: Any) -> Response:
        refused = app_guard()
        if refused is not None:
            return refused
        try:
            return fn()
        except ApplicationProblem as exc:
            return _problem(exc.status, exc.detail, exc.invalid_parameters, list_validation=exc.list_validation)

    @bp.get("/v2/applications")
    def list_applications() -> Response:
        def work() -> Response:
            try:
                page_size = int(request.args.get("page_size", 10))
                page = int(request.args.get("page", 1))
            except ValueError:
                page_size, page = 0, 0
            if not 1 <= page_size <= 100 or page < 1:
                name = "page_size" if not 1 <= page_size <= 100 else "page"
                raise ApplicationProblem(400, "The request failed due to validation errors",
                                         [{"name": name, "reason": "must be between 1 and 100" if name == "page_size"
                                           else "must be 1 or more"}], list_validation=True)
            apps, total = account.list(page, page_size)
            pages = max(1, math.ceil(total / page_size))

            def link(n: int) -> dict:
                return {"href": "/v2/applications?" + urlencode({"page_size": page_size, "page": n})}

            links = {"self": link(page), "first": link(1), "last": link(pages)}
            if page < pages:
                links["next"] = link(page + 1)
            if page > 1:
                links["prev"] = link(page - 1)
            return _json({"page_size": page_size, "page": page, "total_items": total, "total_pages": pages,
                          "_embedded": {"applications": [a.to_wire() for a in apps]}, "_links": links})
        return run(work)

    @bp.post("/v2/applications")
    def create_application() -> Response:
        def work() -> Response:
            app, private = account.create(app_body())
            body = app.to_wire()
            if private is not None:
                body["keys"]["private_key"] = private
            return _json(body, 201)
        return run(work)

    @bp.get("/v2/applications/<app_id>")
    def get_application(app_id: str) -> Response:
        return run(lambda: _json(account.require(app_id).to_wire()))

    @bp.put("/v2/applications/<app_id>")
    def update_application(app_id: str) -> Response:
        return run(lambda: _json(account.update(app_id, app_body()).to_wire()))

    @bp.delete("/v2/applications/<app_id>")
    def delete_application(app_id: str) -> Response:
        def work() -> Response:
            account.delete(app_id)
            return Response(status=204)
        return run(work)

    # -- Application API v1 (application_v1.py): the same applications in v1's shape -----------------
    def v1_fields() -> dict[str, Any]:
        """Query string, form and JSON body fields together (the `nexmo` 2.x package posts its fields in
        the query string; the v1 definition puts them in a JSON body)."""
        fields: dict[str, Any] = dict(request.args.items())
        fields.update(request.form.items())
        if (request.mimetype or "").endswith("json") or request.get_data(as_text=True).lstrip().startswith("{"):
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                raise ApplicationProblem(400, "The request failed due to validation errors",
                                         [{"name": "body", "reason": "is not valid JSON"}]) from None
            if isinstance(body, dict):
                fields.update(body)
        return fields

    def run_v1(work: Any) -> Response:
        try:
            fields = v1_fields()
            key, secret = basic_credentials()
            if key is None:
                key, secret = fields.get("api_key"), fields.get("api_secret")
            if not account.check_basic(key, secret):
                return _problem(401, "You did not provide correct credentials.")
            return work(fields)
        except ApplicationProblem as exc:
            return _problem(exc.status, exc.detail, exc.invalid_parameters)

    @bp.get(v1.PATH)
    def v1_list() -> Response:
        def work(fields: dict[str, Any]) -> Response:
            size, index = v1.paging(fields)
            apps, total = account.list(index + 1, size)
            return _json(v1.page(apps, total, size, index))
        return run_v1(work)

    @bp.post(v1.PATH)
    def v1_create() -> Response:
        def work(fields: dict[str, Any]) -> Response:
            app, private = account.create(v1.v2_body(fields))
            return _json(v1.v1_application(app, private_key=private), 201)
        return run_v1(work)

    @bp.get(v1.PATH + "/<app_id>")
    def v1_get(app_id: str) -> Response:
        return run_v1(lambda fields: _json(v1.v1_application(account.require(app_id))))

    @bp.put(v1.PATH + "/<app_id>")
    def v1_update(app_id: str) -> Response:
        def work(fields: dict[str, Any]) -> Response:
            current = account.require(app_id).to_wire()
            return _json(v1.v1_application(account.update(app_id, v1.v2_body(fields, current))))
        return run_v1(work)

    @bp.delete(v1.PATH + "/<app_id>")
    def v1_delete(app_id: str) -> Response:
        def work(fields: dict[str, Any]) -> Response:
            account.delete(app_id)
            return Response(status=204)
        return run_v1(work)

    # -- Numbers API --------------------------------------------------------------------------
    def numbers_auth(fields: dict[str, str]) -> bool:
        key, secret = basic_credentials()
        if key is None:
            key, secret = fields.get("api_key"), fields.get("api_secret")
        return account.check_basic(key, secret)

    @bp.get("/account/numbers")
    def list_numbers() -> Response:
        args = request.args.to_dict()
        if not numbers_auth(args):
            return _numbers_error(401, "authentication failed")
        try:
            size = int(args.get("size", 10))
            index = int(args.get("index", 1))
            search = int(args.get("search_pattern", 0))
        except ValueError:
            return _numbers_error(400, "size, index and search_pattern must be integers")
        if not 1 <= size <= 100 or index < 1:
            return _numbers_error(400, "size must be 1-100 and index 1 or more")
        has_app = args.get("has_application")
        found = account.owned_numbers(
            application_id=args.get("application_id") or None,
            has_application=None if has_app is None else has_app.lower() == "true",
            country=args.get("country") or None, pattern=args.get("pattern") or None, search_pattern=search)
        page = found[(index - 1) * size: index * size]
        body: dict[str, Any] = {"count": len(found)}
        if page:
            body["numbers"] = [n.to_wire() for n in page]
        return _json(body)

    @bp.post("/number/update")
    def update_number() -> Response:
        fields = _form_fields()
        if not numbers_auth(fields):
            return _numbers_error(401, "authentication failed")
        for name in ("country", "msisdn"):
            if not fields.get(name):
                hint = " (the body is JSON: send a form, application/x-www-form-urlencoded)" if (
                    _JSON_BODY in fields) else ""
                return _numbers_error(400, f"missing parameter: {name}{hint}")
        try:
            account.update_number(fields)
        except ApplicationProblem as exc:
            return _numbers_error(exc.status, exc.detail)
        return _json({"error-code": "200", "error-code-label": "success"})

    return bp
