"""Error types -> the Voice API's wire format (RFC 7807 `application/problem+json`).

The error classes live in labkit/errors.py (one hierarchy for the whole lab); this module only knows how
each one looks on the wire, so REST handlers just raise. Body shapes follow the reference:

- 401 is the SDK fixture captured from the real API.
- 400 for a body of the wrong shape uses the older Voice style, whose `type` is an *integer*
  (`{"type":400,"title":"Bad Request","invalid_parameters":[{"reason","name"}]}`), as seen when
  `stream_url` was sent as a string.
- UNCONFIRMED: the exact bodies for "call not answered yet" (400), "unknown or ended call" (404) and 500.
  The sandbox sends RFC 7807 bodies with a plain-words `detail`; change them here only.
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
    500: "https://developer.vonage.com/api-errors",
}


def problem_body(error: SandboxApiError) -> dict:
    """The JSON body the real API would send for `error`."""
    if isinstance(error, SandboxInvalidParameters) or error.invalid_parameters:
        return {
            "type": 400,
            "title": "Bad Request",
            "detail": error.detail,
            "invalid_parameters": error.invalid_parameters or [],
        }
    return {
        "type": ERROR_TYPES.get(error.status, ERROR_TYPES[400]),
        "title": error.title,
        "detail": error.detail,
        "instance": str(uuid.uuid4()),
    }


def problem_response(error: SandboxApiError) -> tuple[bytes, int, dict[str, str]]:
    """(body, status, headers) ready for a WSGI response."""
    return json.dumps(problem_body(error)).encode(), error.status, {"Content-Type": PROBLEM_JSON}


def internal_error_response() -> tuple[bytes, int, dict[str, str]]:
    """The 500 body the real API sends (reference section 1)."""
    body = {"type": ERROR_TYPES[500], "title": "Internal Server Error", "instance": str(uuid.uuid4())}
    return json.dumps(body).encode(), 500, {"Content-Type": PROBLEM_JSON}


def invalid(name: str, reason: str, detail: str | None = None) -> SandboxInvalidParameters:
    """A 400 naming one bad parameter, e.g. invalid('stream_url', 'Invalid type parameter provided')."""
    return SandboxInvalidParameters(
        detail or f"Invalid parameter {name}: {reason}",
        invalid_parameters=[{"reason": reason, "name": name}],
    )
