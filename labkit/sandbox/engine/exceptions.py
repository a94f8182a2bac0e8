"""Error types -> the Voice API's wire format: RFC 7807 `application/problem+json`, one style everywhere.

The error classes live in labkit/errors.py (one hierarchy for the whole lab); this module only knows how
each one looks on the wire, so REST handlers just raise. Every error body has `type` (a URI), `title`,
`detail` and `instance` ("`type`, `title` and `instance` are all required fields", `instance` the trace
id [DOC-ERR]); a validation error adds `invalid_parameters: [{name, reason}]` [OAS-APP] (sources:
../shared/reference/vonage-platform.md section 7). The older Voice body with an integer `type`
(`{"type":400,...}`, [PHP:error_vapi.json]) is not sent: one style, as the standard says.
UNCONFIRMED: the exact `title`/`detail` of the Voice API's 400 ("not answered yet"), 404 and 500.
"""

from __future__ import annotations

import json
import uuid

from labkit.errors import SandboxApiError, SandboxInvalidParameters

PROBLEM_JSON = "application/problem+json"
ERROR_TYPES = {
    400: "https://developer.nexmo.com/api-errors#bad-request",
    401: "https://developer.nexmo.com/api-errors#unauthorized",
    404: "https://developer.nexmo.com/api-errors#not-found",
    405: "https://developer.nexmo.com/api-errors#method-not-allowed",
    409: "https://developer.nexmo.com/api-errors#conflict",  # the control API only (control/routes.py)
    500: "https://developer.vonage.com/api-errors",
}


def problem_body(error: SandboxApiError) -> dict:
    """The RFC 7807 body for `error` (with `invalid_parameters` when it names bad fields)."""
    body: dict = {
        "type": ERROR_TYPES.get(error.status, ERROR_TYPES[400]),
        "title": error.title,
        "detail": error.detail,
        "instance": str(uuid.uuid4()),
    }
    if isinstance(error, SandboxInvalidParameters) or error.invalid_parameters:
        body["invalid_parameters"] = error.invalid_parameters or []
    return body


def problem_response(error: SandboxApiError) -> tuple[bytes, int, dict[str, str]]:
    """(body, status, headers) ready for a WSGI response."""
    return json.dumps(problem_body(error)).encode(), error.status, {"Content-Type": PROBLEM_JSON}


def internal_error_response() -> tuple[bytes, int, dict[str, str]]:
    """The 500 body, in the same RFC 7807 style."""
    body = {"type": ERROR_TYPES[500], "title": "Internal Server Error",
            "detail": "The sandbox hit an internal error (see its log).", "instance": str(uuid.uuid4())}
    return json.dumps(body).encode(), 500, {"Content-Type": PROBLEM_JSON}


def invalid(name: str, reason: str, detail: str | None = None) -> SandboxInvalidParameters:
    """A 400 naming one bad parameter, e.g. invalid('stream_url', 'Invalid type parameter provided')."""
    return SandboxInvalidParameters(
        detail or f"Invalid parameter {name}: {reason}",
        invalid_parameters=[{"reason": reason, "name": name}],
    )
