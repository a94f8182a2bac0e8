"""`labkit doctor`'s account checks (live mode): what Vonage itself says about the set-up.

Each check is a cheap authenticated request through the real SDK, against VONAGE_API_HOST /
VONAGE_REST_HOST when set (the sandbox in tests):
- the application's credentials: `GET /v1/calls?page_size=1` with its JWT (200 vs 401);
- the account's API key and secret: `GET /v2/applications?page_size=1` (HTTP Basic, 200 vs 401);
- the clock: the API's `Date` header against this machine's clock (JWTs carry `iat`);
- the application: does it exist, where do its answer/event URLs point compared with the lab's
  public URL, are signed callbacks on (and is VONAGE_SIGNATURE_SECRET set to check them);
- the number: does the account rent VONAGE_NUMBER, and is it linked to this application.
Sources: `/work/shared/reference/vonage-platform.md` sections 1-3 and 6.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from labkit.cli.checks import Check
from labkit.errors import plain

MAX_SKEW = 30.0  # seconds; a JWT whose iat is further off may be refused (UNCONFIRMED tolerance at Vonage)


def _now() -> float:
    return time.time()


def _skew_check(http: Any, now: Callable[[], float]) -> Check | None:
    response = getattr(http, "last_response", None)
    date = response.headers.get("Date") if response is not None else None
    if not date:
        return None
    try:
        server = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
    skew = now() - server
    if abs(skew) > MAX_SKEW:
        way = "ahead of" if skew > 0 else "behind"
        return Check("clock", False, f"this machine is {abs(skew):.0f} s {way} the Vonage API's clock",
                     advice="Set the clock right (turn on network time): JWTs carry their issue time, and "
                            "Vonage refuses ones from the future or too old.")
    return Check("clock", True, f"within {abs(skew):.0f} s of the Vonage API's clock (Date header)")


def _voice_check(settings: Any) -> Check:
    from importlib.metadata import version

    from vonage_http_client import Auth, HttpClient, HttpClientOptions
    from vonage_http_client import errors as http_errors
    from vonage_voice import ListCallsFilter, Voice

    from labkit.config import load_private_key

    options: dict[str, Any] = {"timeout": 10.0}
    if settings.api_host:
        options["api_host"] = settings.api_host
    try:
        voice = Voice(HttpClient(Auth(application_id=settings.application_id,
                                      private_key=load_private_key(settings.private_key)),
                                 HttpClientOptions(**options), version("vonage")))
        voice.list_calls(ListCallsFilter(page_size=1))
    except http_errors.AuthenticationError:
        return Check("Voice API credentials", False, "the Voice API refused the application's JWT (401)",
                     advice="VONAGE_PRIVATE_KEY is not the key of VONAGE_APPLICATION_ID: download the key again "
                            "(dashboard > Applications > Edit > Generate public and private key) or run "
                            "`labkit setup`.")
    except Exception as exc:  # noqa: BLE001 - one plain line, never a traceback
        return Check("Voice API credentials", False, "could not ask the Voice API", advice=plain(exc))
    return Check("Voice API credentials", True, "the application's JWT is accepted (GET /v1/calls: 200)")


def account_checks(settings: Any, *, now: Callable[[], float] | None = None) -> list[Check]:
    """The live-mode account checks, one Check per finding (see the module docstring)."""
    from vonage_http_client import errors as http_errors
    from vonage_numbers import ListOwnedNumbersFilter

    from labkit.live.account import LabUrls, clients

    now = now or _now
    checks: list[Check] = []
    if settings.application_id and settings.private_key:
        checks.append(_voice_check(settings))
    if not (settings.api_key and settings.api_secret):
        checks.append(Check("account", None, "VONAGE_API_KEY / VONAGE_API_SECRET not set: the application and "
                            "number are not checked (nor pointed at the lab at start)", blocking=False))
        return checks
    apps, numbers = clients(settings.api_key, settings.api_secret, api_host=settings.api_host,
                            rest_host=settings.rest_host)
    try:
        from vonage_application import ListApplicationsFilter

        apps.list_applications(ListApplicationsFilter(page_size=1, page=1))
    except http_errors.AuthenticationError:
        checks.append(Check("account credentials", False, "Vonage refused VONAGE_API_KEY / VONAGE_API_SECRET (401)",
                            advice="Copy both again from the dashboard's home page (API key, API secret)."))
        return checks
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("account credentials", False, "could not ask the Application API", advice=plain(exc)))
        return checks
    checks.append(Check("account credentials", True, "the API key and secret are accepted (GET /v2/applications)"))
    skew = _skew_check(apps.http_client, now)
    if skew is not None:
        checks.append(skew)
    if not settings.application_id:
        return checks
    try:
        app = apps.get_application(settings.application_id)
    except http_errors.NotFoundError:
        checks.append(Check("application", False, f"{settings.application_id} is not an application of this account",
                            advice="Check VONAGE_APPLICATION_ID on the dashboard (Applications), or run "
                                   "`labkit setup` to create one."))
        return checks
    checks.extend(_application_checks(app, settings, LabUrls))
    if settings.vonage_number:
        number = settings.vonage_number
        owned, _, _ = numbers.list_owned_numbers(ListOwnedNumbersFilter(pattern=number, search_pattern=0))
        match = next((n for n in owned if n.msisdn == number), None)
        if match is None:
            checks.append(Check("number", False, f"{number} is not a number of this account",
                                advice="Buy one on the dashboard (Numbers > Buy numbers) and set VONAGE_NUMBER, "
                                       "or run `labkit setup`."))
        elif match.app_id != settings.application_id or match.voice_callback_type in ("sip", "tel"):
            where = match.app_id or match.voice_callback_value or "no application"
            checks.append(Check("number", False, f"{number} is linked to {where}, not to this application",
                                advice="Inbound calls will not reach the lab: Lab.start() links it when "
                                       "VONAGE_API_KEY/SECRET are set, or link it on the dashboard (Numbers > "
                                       "Your numbers > Link).", blocking=False))
        else:
            checks.append(Check("number", True, f"{number} is linked to this application"))
    return checks


def _application_checks(app: Any, settings: Any, lab_urls: Any) -> list[Check]:
    voice = app.capabilities.voice if app.capabilities is not None else None
    if voice is None:
        return [Check("application", False, f"{app.name!r} has no Voice capability",
                      advice="Turn Voice on for it (dashboard > Applications > Edit > Capabilities), or run "
                             "`labkit setup`.")]
    out = [Check("application", True, f"{app.name!r} exists and has the Voice capability")]
    hooks = voice.webhooks
    answer = hooks.answer_url.address if hooks and hooks.answer_url else None
    event = hooks.event_url.address if hooks and hooks.event_url else None
    public = settings.public_url or (f"https://{settings.ngrok_domain}" if settings.ngrok_domain else None)
    if public:
        want = lab_urls.for_base(public)
        if (answer, event) == (want.answer_url, want.event_url):
            out.append(Check("webhooks", True, f"answer and event URLs point at the lab ({public})"))
        else:
            out.append(Check("webhooks", False, f"answer URL {answer or 'unset'}, event URL {event or 'unset'}; "
                             f"the lab is at {public}",
                             advice="Lab.start() points them at the lab when VONAGE_API_KEY/SECRET are set; "
                                    f"or paste {want.answer_url} and {want.event_url} on the dashboard.",
                             blocking=False))
    else:
        out.append(Check("webhooks", None, f"answer URL {answer or 'unset'}, event URL {event or 'unset'} (the "
                         "ngrok URL changes per start: Lab.start() points them at it)", blocking=False))
    signed = voice.signed_callbacks is not False  # Vonage's default is on [OAS-APP]
    if signed and not settings.signature_secret:
        out.append(Check("signed callbacks", False, "on, but VONAGE_SIGNATURE_SECRET is not set, so the lab "
                         "cannot tell Vonage's webhooks from anyone else's",
                         advice="Set VONAGE_SIGNATURE_SECRET (dashboard > API settings > Signature secret).",
                         blocking=False))
    elif not signed and settings.signature_secret:
        out.append(Check("signed callbacks", False, "off, yet VONAGE_SIGNATURE_SECRET is set: the lab refuses "
                         "unsigned webhooks", advice="Lab.start() turns them on when VONAGE_API_KEY/SECRET are "
                         "set; or turn them on in the application's Voice settings."))
    else:
        out.append(Check("signed callbacks", True, "on, and VONAGE_SIGNATURE_SECRET is set" if signed
                         else "off (and no VONAGE_SIGNATURE_SECRET)"))
    return out


def socket_check(lab: Any) -> Check:
    """A WebSocket upgrade through the lab's public URL with its token, as Vonage's `connect` makes it
    (then closed at once: the lab drops a socket that never says websocket:connected)."""
    from websockets.sync.client import connect

    url = lab.socket_url("doctor")
    shown = url.split("?", 1)[0]
    try:
        with connect(url, open_timeout=10, close_timeout=2,
                     additional_headers={"ngrok-skip-browser-warning": "1", "User-Agent": "labkit-doctor"}):
            pass
    except Exception as exc:  # noqa: BLE001 - one plain line
        return Check("websocket", False, f"no WebSocket upgrade at {shown}", advice=(
            f"{plain(exc)}. Vonage must open the lab's /socket through the public URL: check that it forwards "
            "WebSocket upgrades (ngrok does) to the lab's port."))
    return Check("websocket", True, f"WebSocket upgrades at {shown} (with the lab's token)")
