"""One error hierarchy: catch `LabkitError` for anything the lab raises on purpose.

Every message says what went wrong and what to do about it, because these end up in widgets and
notebook cells read by people who did not write the code.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base of every error the lab raises deliberately."""


def plain(exc: BaseException) -> str:
    """One line for people: labkit's own errors are already worded for them, others get their type name."""
    return str(exc) if isinstance(exc, LabkitError) else f"{type(exc).__name__}: {exc}"


class ConfigError(LabkitError):
    """Settings are missing or invalid (the message lists each one and where to get it)."""


class InvalidInput(LabkitError, ValueError):
    """A value given to the lab was rejected before anything was sent."""


class AudioError(LabkitError):
    """An audio file could not be found, decoded or used."""


class ServerError(LabkitError):
    """The lab's webhook server could not start or serve."""


class PortInUseError(ServerError):
    """The requested port is taken by another process."""


class CallError(LabkitError):
    """The Voice API refused a request about a call."""

    def __init__(self, message: str, *, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(CallError):
    """The Voice API answered 401: the application id or private key is wrong."""


class CallNotAnsweredError(CallError):
    """The call is not answered yet (HTTP 400): wait for 'answered' first."""


class CallEndedError(CallError):
    """The call is unknown or already over (HTTP 404)."""


class WaitTimeout(LabkitError, TimeoutError):
    """A wait for an event ran out of time."""


class TunnelError(LabkitError):
    """The public tunnel (ngrok) could not be opened."""


class SandboxError(LabkitError):
    """The local Voice API sandbox could not do what was asked."""


class SocketError(LabkitError):
    """Something went wrong with a call's WebSocket audio."""


class SignatureError(LabkitError):
    """A webhook's signature (Vonage signed-webhook JWT) was missing or did not check out.

    `reason` is a short code a server can log or count: missing, not_bearer, no_secret, malformed,
    bad_signature, expired, not_yet_valid, missing_claim, payload_hash.
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class TunnelInstallError(TunnelError):
    """The ngrok agent binary is missing and could not be downloaded."""


class TunnelAuthtokenMissingError(TunnelError):
    """No ngrok authtoken is configured, so the agent would be refused."""


class TunnelAuthtokenInvalidError(TunnelError):
    """ngrok refused the authtoken (ERR_NGROK_4018, 105 or 107)."""


class TunnelSessionLimitError(TunnelError):
    """Another ngrok agent already holds the account's only session (ERR_NGROK_108)."""


class TunnelTimeoutError(TunnelError, TimeoutError):
    """The ngrok agent did not connect within the startup timeout."""


# --- sandbox (local Voice API) errors: raised by labkit.sandbox's platform model, mapped to the wire
# format (RFC 7807 problem+json bodies) in labkit/sandbox/engine/exceptions.py, like moto's exceptions.


class SandboxApiError(SandboxError):
    """A request to the sandbox's REST API was refused; `status` is the HTTP status it answers with."""

    status = 400
    title = "Bad Request"

    def __init__(self, message: str, *, invalid_parameters: list[dict] | None = None):
        super().__init__(message)
        self.detail = message
        self.invalid_parameters = invalid_parameters


class SandboxUnauthorized(SandboxApiError):
    """401: the request carried no JWT, or one not signed with the sandbox application's key."""

    status = 401
    title = "Unauthorized"


class SandboxInvalidParameters(SandboxApiError):
    """400 with `invalid_parameters`: the body does not have the shape the Voice API accepts."""


class SandboxCallNotActive(SandboxApiError):
    """400: the call exists but is not answered yet, so it cannot be controlled (wait for 'answered')."""


class SandboxNotFound(SandboxApiError):
    """404: no such call (or it has ended), or no such recording file."""

    status = 404
    title = "Not Found"


class NccoError(SandboxError):
    """An NCCO failed validation; `detail` says which action and why (the wire only says 'Syntax error')."""

    def __init__(self, detail: str, *, index: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.index = index
