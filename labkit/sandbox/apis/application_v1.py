"""The Application API v1 (`/v1/applications`), over the same account as v2: translation only.

Vonage's published v1 definition (Nexmo/api-specification `definitions/application.yml`, "Vonage
Application API" 1.0.2, marked deprecated: "Please use version 2 going forwards") is followed, and v2's
definition says "This API is backwards compatible with version 1. Applications created using version 1 of
the API can also be managed using version 2" (Application API v2.4.1, info.description): one store, two
shapes. Legacy clients use it: the `nexmo` 2.x Node package (`postUseQueryString('/v1/applications',
{name, type, answer_url, event_url})`, credentials in the query string) and Node-RED's "create
application" button built on it.

What the v1 definition says, and so the sandbox does:
- credentials: `api_key` and `api_secret` as query parameters (GET, DELETE) or body fields (POST, PUT);
  HTTP Basic is taken too (v2's scheme). Fields may come as JSON, a form, or the query string (the
  `nexmo` package sends them in the query string of a POST).
- create (`POST`, 201): `name` and `type` (`voice` | `messages`) required; `answer_url`, `answer_method`
  (GET), `event_url`, `event_method` (POST) for voice ("event_url ... Always required for voice
  applications"); `inbound_url`, `status_url` and their methods (POST) for messages. The answer is the
  application with `keys.public_key` and `keys.private_key`.
- the application: `{id, name, voice: {webhooks: [{endpoint_type, endpoint, http_method}]}, messages:
  {webhooks: [...]}, keys: {public_key}, _links: {href}}` (the definition's `links` schema has `href`
  itself, no `self` level).
- list (`GET`, 200): `page_size` (default 10), `page_index` (default 0, "the offset from the first
  page"); `{count, page_size, page_index, _embedded: {applications}, _links}`; "The public_key is not
  included in the application information" of the list.
- update (`PUT /{app_id}`, 200) takes the create fields; delete (`DELETE /{app_id}`, 204).
UNCONFIRMED (the definition documents no error responses): errors use v2's bodies (application/json,
`invalid_parameters` on 400); a v1 update replaces only the capability of its `type`, keeping others.
"""

from __future__ import annotations

from typing import Any

from labkit.sandbox.apis.account_models import Application, ApplicationProblem

TYPES = ("voice", "messages")
HOOKS = {"voice": (("answer_url", "answer_method", "GET"), ("event_url", "event_method", "POST")),
         "messages": (("inbound_url", "inbound_method", "POST"), ("status_url", "status_method", "POST"))}
REQUIRED = {"voice": ("event_url",), "messages": ("inbound_url", "status_url")}
PATH = "/v1/applications"


def _bad(name: str, reason: str) -> ApplicationProblem:
    return ApplicationProblem(400, "The request failed due to validation errors", [{"name": name, "reason": reason}])


def v2_body(fields: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A v1 create/update request as the v2 body the account takes (`current`: the application's v2
    form, whose other capabilities an update keeps)."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("name", "is required")
    kind = fields.get("type")
    if kind not in TYPES:
        raise _bad("type", "must be one of: voice, messages")
    for required in REQUIRED[kind]:
        if not fields.get(required):
            raise _bad(required, f"is required for {kind} applications")
    hooks: dict[str, Any] = {}
    for url_field, method_field, default in HOOKS[kind]:
        if fields.get(url_field):
            hooks[url_field] = {"address": str(fields[url_field]),
                                "http_method": str(fields.get(method_field) or default).upper()}
    capabilities = dict((current or {}).get("capabilities") or {})
    capabilities[kind] = {**capabilities.get(kind, {}), "webhooks": hooks}
    body: dict[str, Any] = {"name": name, "capabilities": capabilities}
    if current and current.get("privacy"):
        body["privacy"] = current["privacy"]
    return body


def v1_application(app: Application, *, private_key: str | None = None, with_key: bool = True) -> dict[str, Any]:
    """The application as v1 shows it: each capability's webhooks as a list of endpoints."""
    wire = app.to_wire()
    out: dict[str, Any] = {"id": app.id, "name": app.name}
    for kind in TYPES:
        hooks = (wire["capabilities"].get(kind) or {}).get("webhooks") or {}
        out[kind] = {"webhooks": [{"endpoint_type": hook, "endpoint": spec.get("address"),
                                   "http_method": spec.get("http_method")} for hook, spec in hooks.items()]}
    if with_key:
        out["keys"] = {"public_key": app.public_key}
        if private_key is not None:
            out["keys"]["private_key"] = private_key
    out["_links"] = {"href": f"{PATH}/{app.id}"}
    return out


def page(apps: list[Application], total: int, page_size: int, page_index: int) -> dict[str, Any]:
    """`GET /v1/applications`: one page, without public keys (the definition's words)."""
    return {"count": total, "page_size": page_size, "page_index": page_index,
            "_embedded": {"applications": [v1_application(a, with_key=False) for a in apps]},
            "_links": {"href": f"{PATH}?page_size={page_size}&page_index={page_index}"}}


def paging(args: dict[str, Any]) -> tuple[int, int]:
    """(page_size, page_index) from the query, with v1's defaults 10 and 0."""
    try:
        size = int(args.get("page_size", 10))
        index = int(args.get("page_index", 0))
    except (TypeError, ValueError):
        raise _bad("page_size", "page_size and page_index must be whole numbers") from None
    if not 1 <= size <= 100 or index < 0:
        raise _bad("page_size" if not 1 <= size <= 100 else "page_index",
                   "must be between 1 and 100" if not 1 <= size <= 100 else "must be 0 or more")
    return size, index
