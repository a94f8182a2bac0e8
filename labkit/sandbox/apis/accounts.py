"""The sandbox account: its applications and numbers (state only; HTTP is in account_routes.py).

A Vonage account has an API key and secret (HTTP Basic for the Application and Numbers APIs), one
signature secret (signs webhooks of applications whose `signed_callbacks` is on), any number of
applications (each with its own key pair and voice webhooks) and the numbers it rents, each linked to
at most one application. Inbound calls to a number are routed by the application linked to it; a call
created with an application's JWT and no `event_url` uses that application's.

Sources (`/work/shared/reference/vonage-platform.md`, sections 1-2, and the SDK's `vonage_application`
2.0.2 / `vonage_numbers` 1.0.5 models):
- request bodies are validated with the SDK's own `ApplicationConfig` model, so limits follow it
  (connect_timeout 300-1000 ms, socket_timeout 1000-10000 ms, conversations_ttl 1-9000 h,
  leg_persistence_time 1-31 d); the server's own limits are UNCONFIRMED in the reference.
- defaults filled in on the way in [OAS-APP]: connect_timeout 1000, socket_timeout 5000 (answer and
  fallback) / 10000 (event), signed_callbacks true, conversations_ttl 48, leg_persistence_time 2,
  privacy.improve_ai true. Method defaults GET (answer/fallback) and POST (event): UNCONFIRMED.
- PUT replaces the whole application (INFERENCE in the reference: every documented workflow is a
  read-modify-write); a PUT without `keys.public_key` keeps the current key (UNCONFIRMED).
- create without a public key makes a key pair and returns `keys.private_key` once [DOC-CLI]; with
  one, no private key is returned (UNCONFIRMED).
- UNCONFIRMED simplification: the sandbox keeps one connect timeout per application (the answer URL's).
- Applications made through the API and the numbers' links outlive the process: every change calls
  `on_change` (account_store.py writes them under the sandbox home and reads them back at start), as
  Vonage keeps an application until it is deleted. The default application (made once per
  installation, see auth.py) and its number are always there.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from labkit.keys import new_key_pair
from labkit.sandbox.apis.account_models import (
    DEFAULT_APP_NAME,
    VOICE_DEFAULTS,
    Application,
    ApplicationProblem,
    Number,
    non_web_addresses,
    validation_problems,
)
from labkit.sandbox.wire.webhooks import WebhookSettings

__all__ = ["DEFAULT_APP_NAME", "Account", "Application", "ApplicationProblem", "Number"]

class Account:
    """The sandbox's one account: credentials, applications, numbers. Thread-safe."""

    def __init__(self, *, api_key: str, api_secret: str, signature_secret: str, default_app: Application,
                 number: str) -> None:
        self.lock = threading.RLock()
        self.api_key = api_key
        self.api_secret = api_secret
        self._signature_secret = signature_secret
        self.default_id = default_app.id
        self.applications: dict[str, Application] = {default_app.id: default_app}
        self.numbers: dict[str, Number] = {number: Number(msisdn=number, app_id=default_app.id)}
        self.file_owners: dict[str, str] = {}  # recording file id -> the application that made it
        self.on_change: Callable[[Account], None] | None = None  # after each API change (account_store.py)
        self._sync(default_app)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    # -- what outlives the process (account_store.py) -------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The applications made through the API (as the API shows them) and every number's link."""
        with self.lock:
            apps = [a.to_wire() for a in self.applications.values() if a.id != self.default_id]
            numbers = [{"msisdn": n.msisdn, "country": n.country, "app_id": n.app_id,
                        "voice_callback_type": n.voice_callback_type, "voice_callback_value": n.voice_callback_value}
                       for n in self.numbers.values()]
        return {"applications": apps, "numbers": numbers}

    def restore(self, wire: dict[str, Any]) -> Application:
        """An application as `snapshot()` wrote it, back (validated as a PUT body is)."""
        body = {k: wire[k] for k in ("name", "capabilities", "privacy") if k in wire}
        config = self._validate(body)
        app = Application(id=str(wire["id"]), name=config.name, public_key=str(wire["keys"]["public_key"]))
        self._apply(app, config, body)
        with self.lock:
            self.applications[app.id] = app
            self._sync(app)
        return app

    def restore_number(self, link: dict[str, Any]) -> None:
        """A number's link as `snapshot()` wrote it (a link to an application no longer here is dropped)."""
        with self.lock:
            num = self.numbers.setdefault(link["msisdn"], Number(msisdn=link["msisdn"]))
            num.country = str(link.get("country") or num.country)
            app_id = link.get("app_id")
            num.app_id = app_id if app_id in self.applications else None
            num.voice_callback_type = link.get("voice_callback_type")
            num.voice_callback_value = link.get("voice_callback_value")

    # -- credentials -------------------------------------------------------------------------
    def check_basic(self, key: str | None, secret: str | None) -> bool:
        import hmac

        return bool(key and secret) and hmac.compare_digest(f"{key}:{secret}", f"{self.api_key}:{self.api_secret}")

    @property
    def signature_secret(self) -> str:
        return self._signature_secret

    @signature_secret.setter
    def signature_secret(self, value: str) -> None:
        with self.lock:
            self._signature_secret = value
            for app in self.applications.values():
                self._sync(app)

    def _sync(self, app: Application) -> None:
        """Keep the platform's view (WebhookSettings) in step with the account and the application."""
        app.settings.signature_secret = self._signature_secret if app.signed_callbacks else None
        app.settings.application_id = app.id

    # -- lookups the platform uses --------------------------------------------------------------
    @property
    def default(self) -> Application:
        return self.applications[self.default_id]

    def get(self, app_id: str | None) -> Application | None:
        with self.lock:
            return self.applications.get(app_id) if app_id else None

    def settings_for(self, app_id: str | None) -> WebhookSettings:
        """The webhook settings of `app_id` (the default application's when None or unknown)."""
        app = self.get(app_id) or self.default
        return app.settings

    def public_key(self, app_id: str) -> bytes | None:
        app = self.get(app_id)
        return app.public_key.encode() if app is not None else None

    def rent(self, msisdn: str, app_id: str | None) -> Number:
        """Give the account a number linked to `app_id` (the sandbox's own way in: `--number`)."""
        with self.lock:
            num = self.numbers.setdefault(msisdn, Number(msisdn=msisdn))
            num.app_id = app_id
            return num

    def app_for_number(self, msisdn: str) -> tuple[Number | None, Application | None]:
        """The number (if the account rents it) and the application its inbound calls reach."""
        with self.lock:
            num = self.numbers.get(str(msisdn).lstrip("+"))
            if num is None or num.voice_callback_type in ("sip", "tel"):
                return num, None
            return num, self.applications.get(num.app_id or "")

    def owns(self, leg: Any, app_id: str | None) -> bool:
        """Is `leg` a call of application `app_id`? (Calls are per application on Vonage.)"""
        return (getattr(leg, "application_id", None) or self.default_id) == (app_id or self.default_id)

    def owner_of(self, leg: Any) -> str:
        return getattr(leg, "application_id", None) or self.default_id

    def check_file(self, file_id: str, app_id: str | None) -> None:
        """A recording downloads only with a JWT "signed by the same application key that created the
        recording" [NDP:recording.md]; the status for another application's JWT is UNCONFIRMED (401 here)."""
        from labkit.errors import SandboxUnauthorized

        owner = self.file_owners.get(file_id)
        if owner is not None and owner != (app_id or self.default_id):
            raise SandboxUnauthorized("You did not provide correct credentials.")

    def check_leg(self, platform: Any, uuid: str, app_id: str | None) -> None:
        """404 for another application's call, as for an unknown one."""
        from labkit.errors import SandboxNotFound

        with platform.lock:
            leg = platform.legs.get(uuid)
        if leg is not None and not self.owns(leg, app_id):
            raise SandboxNotFound(f"No call with uuid {uuid}: check the uuid (calls are per application).")

    def set_signed(self, app: Application, signed: bool) -> None:
        with self.lock:
            app.signed_callbacks = signed
            self._sync(app)

    # -- the Application API's operations ---------------------------------------------------------
    def list(self, page: int, page_size: int) -> tuple[list[Application], int]:
        with self.lock:
            apps = list(self.applications.values())
        return apps[(page - 1) * page_size: page * page_size], len(apps)

    def require(self, app_id: str) -> Application:
        app = self.get(app_id)
        if app is None:
            raise ApplicationProblem(404, f"ID '{app_id}' does not exist, or you do not have access")  # [OAS-APP]
        return app

    def create(self, body: Any) -> tuple[Application, str | None]:
        """POST /v2/applications: a new application (and its private key when none was given)."""
        config = self._validate(body)
        public = (config.keys.public_key if config.keys else None) or None
        private = None
        if public is None:
            public, private = new_key_pair()
        else:
            self._check_public_key(public)
        app = Application(id=str(uuidlib.uuid4()), name=config.name, public_key=public)
        self._apply(app, config, body)
        with self.lock:
            self.applications[app.id] = app
            self._sync(app)
        self._changed()
        return app, private

    def update(self, app_id: str, body: Any) -> Application:
        """PUT /v2/applications/{id}: replace name, capabilities and privacy (keys only if given)."""
        app = self.require(app_id)
        config = self._validate(body)
        if config.keys and config.keys.public_key:
            self._check_public_key(config.keys.public_key)
            app.public_key = config.keys.public_key
        with self.lock:
            app.name = config.name
            self._apply(app, config, body)
            self._sync(app)
        self._changed()
        return app

    def delete(self, app_id: str) -> None:
        """DELETE /v2/applications/{id}; numbers linked to it are unlinked (UNCONFIRMED)."""
        with self.lock:
            self.require(app_id)
            if app_id == self.default_id:
                # UNCONFIRMED what Vonage does; the sandbox keeps its own application so that it stays usable
                raise ApplicationProblem(400, "The sandbox's own application cannot be deleted.",
                                         [{"name": "id", "reason": "is the sandbox's default application"}])
            del self.applications[app_id]
            for num in self.numbers.values():
                if num.app_id == app_id:
                    num.app_id = None
        self._changed()

    # -- the Numbers API's operations ---------------------------------------------------------------
    def owned_numbers(self, *, application_id: str | None = None, has_application: bool | None = None,
                      country: str | None = None, pattern: str | None = None, search_pattern: int = 0) -> list[Number]:
        with self.lock:
            out = []
            for num in self.numbers.values():
                if application_id and num.app_id != application_id:
                    continue
                if has_application is not None and bool(num.app_id) != has_application:
                    continue
                if country and num.country != country.upper():
                    continue
                if pattern:
                    hit = {0: num.msisdn.startswith, 1: num.msisdn.__contains__, 2: num.msisdn.endswith}
                    if not hit.get(search_pattern, num.msisdn.startswith)(pattern):
                        continue
                out.append(num)
            return out

    def update_number(self, fields: dict[str, str]) -> None:
        """POST /number/update: link the number to `app_id` (or route it to sip/tel).

        A field left out keeps its value and an empty one clears it: the SDK documents "Set to an empty
        string to remove the webhook" for moHttpUrl (vonage_numbers UpdateNumberParams); that a field
        left out is kept is INFERENCE from it (vonage-platform.md section 10: not documented)."""
        with self.lock:
            num = self.numbers.get(fields["msisdn"].lstrip("+"))
            if num is None or num.country != fields["country"].upper():
                raise ApplicationProblem(420, "method failed")
            kind = fields.get("voiceCallbackType")
            value = fields.get("voiceCallbackValue")
            app_id = fields.get("app_id")
            if kind == "app":  # deprecated, still accepted [OAS-NUM]; app_id, when also sent, wins
                app_id, kind, value = app_id or value, None, None
            if app_id is not None:
                if app_id and app_id not in self.applications:
                    raise ApplicationProblem(420, "method failed")  # observed shape [CLI-ISS233]
                num.app_id = app_id or None
            if kind in ("sip", "tel"):
                num.voice_callback_type, num.voice_callback_value = kind, value
            elif kind is None and app_id is not None:
                num.voice_callback_type = num.voice_callback_value = None
            for wire, attr in (("moHttpUrl", "mo_http_url"), ("voiceStatusCallback", "voice_status_callback")):
                if wire in fields:
                    setattr(num, attr, fields[wire] or None)
        self._changed()

    # -- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _validate(body: Any) -> Any:
        from pydantic import ValidationError
        from vonage_application import ApplicationConfig

        if not isinstance(body, dict):
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     [{"name": "body", "reason": "must be a JSON object"}])
        bad_urls = non_web_addresses(body.get("capabilities"))
        if bad_urls:
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     [{"name": name, "reason": "must be an http or https URL"} for name in bad_urls])
        try:
            return ApplicationConfig.model_validate(body)
        except ValidationError as exc:
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     validation_problems(exc)) from None
        except Exception as exc:  # the SDK's own validators raise ApplicationError
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     [{"name": "capabilities", "reason": str(exc)}]) from None

    @staticmethod
    def _check_public_key(pem: str) -> None:
        from cryptography.hazmat.primitives import serialization

        try:
            serialization.load_pem_public_key(pem.encode())
        except (ValueError, TypeError):
            raise ApplicationProblem(400, "The request failed due to validation errors",
                                     [{"name": "keys.public_key", "reason": "must be a PEM public key"}]) from None

    @staticmethod
    def _apply(app: Application, config: Any, body: dict) -> None:
        """Copy a validated ApplicationConfig onto `app` (whole replace), filling Vonage's defaults.

        Capabilities other than voice are kept as sent (the SDK's model knows only some of them:
        video, meetings, network_apis... would be lost), validated only as far as the model goes."""
        caps = config.capabilities
        voice = caps.voice if caps is not None else None
        raw = body.get("capabilities") if isinstance(body.get("capabilities"), dict) else {}
        app.other_capabilities = {k: v for k, v in raw.items() if k != "voice" and v is not None}
        app.privacy = {"improve_ai": True, **(config.privacy.model_dump(exclude_none=True) if config.privacy else {})}
        app.voice = voice is not None
        s = app.settings
        hooks = voice.webhooks if voice is not None and voice.webhooks is not None else None
        answer = hooks.answer_url if hooks else None
        fallback = hooks.fallback_answer_url if hooks else None
        event = hooks.event_url if hooks else None
        s.answer_url = answer.address if answer else None
        s.answer_method = (answer.http_method if answer and answer.http_method else "GET")
        s.fallback_answer_url = fallback.address if fallback else None
        s.event_url = event.address if event else None
        s.event_method = (event.http_method if event and event.http_method else "POST")
        s.connect_timeout = (answer.connect_timeout if answer and answer.connect_timeout else 1000) / 1000.0
        s.answer_timeout = (answer.socket_timeout if answer and answer.socket_timeout else 5000) / 1000.0
        s.event_timeout = (event.socket_timeout if event and event.socket_timeout else 10000) / 1000.0
        app.signed_callbacks = True if voice is None or voice.signed_callbacks is None else voice.signed_callbacks
        extra = dict(VOICE_DEFAULTS)
        if voice is not None:
            extra.update(voice.model_dump(include={"conversations_ttl", "leg_persistence_time", "region"},
                                          exclude_none=True, mode="json"))
        app.voice_extra = extra
