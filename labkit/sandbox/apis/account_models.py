"""The account's records: applications and numbers as the Application and Numbers APIs show them.

State only (the account that holds them is accounts.py; HTTP is account_routes.py). Sources are given in
accounts.py's docstring and beside each field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.sandbox.engine.ncco_schema import web_url
from labkit.sandbox.wire.webhooks import WebhookSettings

DEFAULT_APP_NAME = "labkit sandbox"
NUMBER_COUNTRY = "GB"  # the sandbox's numbers are UK mobile test numbers (447700 900xxx, Ofcom's drama range)
NUMBER_TYPE = "mobile-lvn"
NUMBER_FEATURES = ["VOICE", "SMS"]
VOICE_DEFAULTS = {"conversations_ttl": 48, "leg_persistence_time": 2}  # [OAS-APP]


class ApplicationProblem(Exception):
    """A refused Application API request: `status`, and `invalid_parameters` for a 400."""

    def __init__(self, status: int, detail: str, invalid_parameters: list[dict] | None = None,
                 *, list_validation: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.invalid_parameters = invalid_parameters or []
        self.list_validation = list_validation


@dataclass
class Application:
    """One application: identity, key, capabilities, and the voice webhooks as the platform uses them."""

    id: str
    name: str
    public_key: str
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    voice: bool = True  # has the voice capability
    signed_callbacks: bool = True
    voice_extra: dict[str, Any] = field(default_factory=lambda: dict(VOICE_DEFAULTS))
    other_capabilities: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=lambda: {"improve_ai": True})

    def to_wire(self) -> dict[str, Any]:
        """The Application object as `GET /v2/applications/{id}` returns it [OAS-APP], [PY-TESTS]."""
        caps: dict[str, Any] = dict(self.other_capabilities)
        if self.voice:
            s = self.settings
            hooks: dict[str, Any] = {}
            connect = int(round(s.connect_timeout * 1000))
            for name, address, method, socket_s in (
                ("answer_url", s.answer_url, s.answer_method, s.answer_timeout),
                ("fallback_answer_url", s.fallback_answer_url, s.answer_method, s.answer_timeout),
                ("event_url", s.event_url, s.event_method, s.event_timeout),
            ):
                if address:
                    hooks[name] = {"address": address, "http_method": method, "connect_timeout": connect,
                                   "socket_timeout": int(round(socket_s * 1000))}
            caps["voice"] = {"webhooks": hooks, "signed_callbacks": self.signed_callbacks, **self.voice_extra}
        return {
            "id": self.id,
            "name": self.name,
            "capabilities": caps,
            "privacy": dict(self.privacy),
            "keys": {"public_key": self.public_key},
            "_links": {"self": {"href": f"/v2/applications/{self.id}"}},
        }


@dataclass
class Number:
    """A number the account rents; `app_id` is the application its inbound calls go to."""

    msisdn: str
    country: str = NUMBER_COUNTRY
    type: str = NUMBER_TYPE
    app_id: str | None = None
    voice_callback_type: str | None = None  # "sip" / "tel" route around the application
    voice_callback_value: str | None = None
    mo_http_url: str | None = None  # inbound SMS webhook [OAS-NUM]
    voice_status_callback: str | None = None  # [OAS-NUM]; not in the documented GET response, so not shown

    def to_wire(self) -> dict[str, Any]:
        """One entry of `GET /account/numbers` [OAS-NUM], [PY-TESTS:list_owned_numbers_basic.json]."""
        out: dict[str, Any] = {"country": self.country, "msisdn": self.msisdn, "type": self.type,
                               "features": list(NUMBER_FEATURES)}
        if self.mo_http_url:
            out["moHttpUrl"] = self.mo_http_url
        if self.app_id:
            out.update({"app_id": self.app_id, "messagesCallbackType": "app", "messagesCallbackValue": self.app_id,
                        "voiceCallbackType": "app", "voiceCallbackValue": self.app_id})
        if self.voice_callback_type:
            out["voiceCallbackType"] = self.voice_callback_type
            out["voiceCallbackValue"] = self.voice_callback_value
        return out


def validation_problems(exc: Any) -> list[dict]:
    """pydantic errors -> Vonage's `invalid_parameters` ([{name: 'a.b.c', reason}])."""
    out = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err.get("loc", ()))
        reason = err.get("msg", "is invalid")
        if err.get("type") == "literal_error" and name.endswith("http_method"):
            reason = "must be one of: GET, POST"  # the example in [OAS-APP]
        out.append({"name": name, "reason": reason})
    return out


def non_web_addresses(capabilities: Any) -> list[str]:
    """The `capabilities.<product>.webhooks.<hook>.address` values that are not http(s) URLs: Vonage calls
    them over the internet (every example in the Application API spec is https://); `file://` and the like
    are refused (the reason's words are the sandbox's, UNCONFIRMED)."""
    bad: list[str] = []
    if not isinstance(capabilities, dict):
        return bad
    for product, cap in capabilities.items():
        hooks = cap.get("webhooks") if isinstance(cap, dict) else None
        if not isinstance(hooks, dict):
            continue
        for hook, spec in hooks.items():
            address = spec.get("address") if isinstance(spec, dict) else None
            if address is not None and not web_url(address):
                bad.append(f"capabilities.{product}.webhooks.{hook}.address")
    return bad
