"""The Vonage application follows the lab: its voice webhooks point at the lab, its number is linked.

Both modes do this the same way, through the Application API v2 and the Numbers API with the
account's API key and secret (HTTP Basic), using the real SDK's `vonage_application` and
`vonage_numbers` clients (what `vonage.Vonage(Auth(api_key, api_secret))` builds). The update is a
read-modify-write of the whole application, as every documented workflow does (vonage-platform.md,
"PUT semantics"). In live mode the previous URLs are saved under LABKIT_HOME before they change, so
`lab.stop()` (or the next start after a crashed kernel) puts them back; the number stays linked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import AuthenticationError, ConfigError, LabkitError

HTTP_TIMEOUT = 10.0
DASHBOARD_APP = "Vonage dashboard > Applications > your application > Edit > Capabilities > Voice"
DASHBOARD_NUMBER = "Vonage dashboard > Numbers > Your numbers > Link (to your application)"


@dataclass(frozen=True)
class LabUrls:
    """Where the platform must send the lab's webhooks."""

    answer_url: str
    event_url: str
    fallback_url: str

    @classmethod
    def for_base(cls, base: str) -> LabUrls:
        base = base.rstrip("/")
        return cls(f"{base}/webhooks/answer", f"{base}/webhooks/event", f"{base}/webhooks/answer")


@dataclass
class Pointed:
    """What `point_application` changed: lines for the user, and the previous webhooks to restore."""

    application_id: str
    changes: list[str] = field(default_factory=list)
    previous: dict[str, Any] | None = None  # capabilities.voice before the change (wire form)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"Vonage application {self.application_id}:"]
        lines += [f"  - {c}" for c in self.changes] or ["  - already pointed at the lab (nothing changed)"]
        lines += [f"  ! {p}" for p in self.problems]
        return "\n".join(lines)


def clients(api_key: str, api_secret: str, *, api_host: str | None = None, rest_host: str | None = None,
            timeout: float = HTTP_TIMEOUT) -> tuple[Any, Any]:
    """(Application, Numbers) clients of the real SDK, on one HTTP client with Basic credentials."""
    from importlib.metadata import version

    from vonage_application import Application
    from vonage_http_client import Auth, HttpClient, HttpClientOptions
    from vonage_numbers import Numbers

    options: dict[str, Any] = {"timeout": timeout}
    if api_host:
        options["api_host"] = api_host
    if rest_host:
        options["rest_host"] = rest_host
    http = HttpClient(Auth(api_key=api_key, api_secret=api_secret), HttpClientOptions(**options), version("vonage"))
    return Application(http), Numbers(http)


def _get_raw(app_client: Any, application_id: str) -> dict[str, Any]:
    """The application as JSON. Read and written raw (with the SDK's client, auth and hosts) rather
    than through its pydantic models: those drop capabilities they do not know (video, meetings,
    network_apis...), and a PUT replaces the whole application, so a round trip would erase them."""
    http = app_client.http_client
    return http.get(http.api_host, f"/v2/applications/{application_id}", None, "basic") or {}


def _put_raw(app_client: Any, application_id: str, body: dict[str, Any]) -> None:
    http = app_client.http_client
    body = {k: v for k, v in body.items() if k not in ("_links", "id")}
    keys = body.get("keys") or {}
    body["keys"] = {"public_key": keys["public_key"]} if keys.get("public_key") else None  # never a private key
    http.put(http.api_host, f"/v2/applications/{application_id}", {k: v for k, v in body.items() if v is not None},
             "basic")


def _check_url(value: dict[str, Any] | None, address: str, method: str) -> Any:
    """A VoiceUrl (the SDK's model, so its limits apply) keeping the old URL's timeouts."""
    from vonage_application import VoiceUrl

    old = value or {}
    return VoiceUrl(address=address, http_method=method, connect_timeout=old.get("connect_timeout"),
                    socket_timeout=old.get("socket_timeout")).model_dump(exclude_none=True)


def point_application(app_client: Any, numbers_client: Any, application_id: str, urls: LabUrls, *,
                      number: str | None = None, signed: bool | None = None) -> Pointed:
    """Point the application's voice webhooks at `urls`, turn signed callbacks on when `signed`, and
    link `number` to it if it is not. Raises AuthenticationError / ConfigError in plain words."""
    import copy

    from vonage_http_client import errors as http_errors

    result = Pointed(application_id)
    try:
        app = _get_raw(app_client, application_id)
        caps = app.setdefault("capabilities", {}) or {}
        app["capabilities"] = caps
        voice = caps.get("voice") or {}
        result.previous = copy.deepcopy(voice)
        hooks = dict(voice.get("webhooks") or {})
        wanted = {"answer_url": (urls.answer_url, "GET"), "event_url": (urls.event_url, "POST"),
                  "fallback_answer_url": (urls.fallback_url, "GET")}
        for name, (address, method) in wanted.items():
            current = hooks.get(name) or {}
            if current.get("address") != address or (current.get("http_method") or method) != method:
                result.changes.append(f"{name} {current.get('address') or 'unset'} -> {address} ({method})")
            hooks[name] = _check_url(current, address, method)
        voice["webhooks"] = hooks
        if signed and voice.get("signed_callbacks") is False:
            result.changes.append("signed callbacks off -> on")
            voice["signed_callbacks"] = True
        caps["voice"] = voice
        if result.changes:
            _put_raw(app_client, application_id, app)
        if number:
            _link_number(numbers_client, application_id, number, result)
    except http_errors.AuthenticationError:
        raise AuthenticationError(
            "The Application API refused VONAGE_API_KEY / VONAGE_API_SECRET (401): copy both from the "
            "Vonage dashboard's home page (API key, API secret).", status=401) from None
    except http_errors.NotFoundError:
        raise ConfigError(
            f"VONAGE_APPLICATION_ID {application_id} is not an application of this account (404): check it "
            "on the dashboard (Applications), or create one with `labkit setup`.") from None
    except http_errors.HttpRequestError as exc:
        raise LabkitError(f"The Application/Numbers API answered {exc.response.status_code}: "
                          f"{exc.response.text[:200]}") from None
    return result


def _link_number(numbers_client: Any, application_id: str, number: str, result: Pointed) -> None:
    from vonage_numbers import ListOwnedNumbersFilter, UpdateNumberParams

    number = number.lstrip("+")
    owned, _count, _next = numbers_client.list_owned_numbers(ListOwnedNumbersFilter(pattern=number, search_pattern=0))
    match = next((n for n in owned if n.msisdn == number), None)
    if match is None:
        result.problems.append(f"VONAGE_NUMBER {number} is not a number of this account: buy or pick one on "
                               "the dashboard (Numbers), or run `labkit setup`.")
        return
    if match.app_id == application_id and match.voice_callback_type in (None, "app"):
        return
    numbers_client.update_number(UpdateNumberParams(country=match.country, msisdn=number, app_id=application_id))
    result.changes.append(f"number {number} linked ({match.app_id or 'was unlinked'} -> {application_id})")


def restore_application(app_client: Any, application_id: str, previous: dict[str, Any]) -> None:
    """Put the voice capability back as it was before `point_application` (the rest as it is now)."""
    app = _get_raw(app_client, application_id)
    caps = app.get("capabilities") or {}
    if previous:
        caps["voice"] = previous
    else:
        caps.pop("voice", None)
    app["capabilities"] = caps
    _put_raw(app_client, application_id, app)


def check_recording_host(url: str, trusted: Any = ()) -> None:
    """Refuse to send the application's JWT anywhere but Vonage's hosts (`*.nexmo.com`, `*.vonage.com`,
    judged by the last two labels as the Node SDK does; vonage-platform.md section 9) or a host:port in
    `trusted` (the running sandbox, the VONAGE_API_HOST the lab already sends its JWT to)."""
    from urllib.parse import urlsplit

    from labkit.errors import InvalidInput

    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    netloc = parts.netloc.lower().rsplit("@", 1)[-1]
    if host.split(".")[-2:] in (["nexmo", "com"], ["vonage", "com"]) or netloc in {t.lower() for t in trusted if t}:
        return
    raise InvalidInput(
        f"Not downloading {url}: recording URLs come from Vonage (*.vonage.com, *.nexmo.com) and the "
        "download carries your application's credentials, so the lab sends them nowhere else. Pass the "
        "recording_url of a record event as it arrived.")


def paste_instructions(urls: LabUrls, number: str | None) -> str:
    """Without an API key and secret: what to paste where on the dashboard."""
    lines = [
        "The lab cannot update your Vonage application (set VONAGE_API_KEY and VONAGE_API_SECRET to let it).",
        f"Paste these in {DASHBOARD_APP}:",
        f"  Answer URL    {urls.answer_url}   (HTTP GET)",
        f"  Event URL     {urls.event_url}   (HTTP POST)",
        f"  Fallback URL  {urls.fallback_url}   (HTTP GET)",
    ]
    if number:
        lines.append(f"and link {number} to the application: {DASHBOARD_NUMBER}.")
    return "\n".join(lines)


# -- what live mode saves, for lab.stop() and for the start after a crashed kernel ------------------

def saved_path(application_id: str) -> Path:
    from labkit.config import state_dir

    return state_dir() / "live" / f"application-{application_id}.json"


def save_previous(application_id: str, previous: dict[str, Any]) -> Path:
    path = saved_path(application_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"application_id": application_id, "pid": os.getpid(), "voice": previous}, indent=2))
    os.replace(tmp, path)
    return path


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def load_previous(application_id: str) -> dict[str, Any] | None:
    """The URLs saved by a lab whose process is gone (a crashed kernel), if any. A lab still running
    (here or in another process) keeps its own: the application as found is then what to restore."""
    path = saved_path(application_id)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return None if _alive(saved.get("pid")) else saved.get("voice")


def forget_previous(application_id: str) -> None:
    saved_path(application_id).unlink(missing_ok=True)


def follow_lab(settings: Any, public_url: str) -> tuple[str, Any]:
    """Live mode: point the application at `public_url` and link VONAGE_NUMBER (with the API key and
    secret), or say what to paste where (without). Returns (the short block to print, restore or None)."""
    urls = LabUrls.for_base(public_url)
    if not (settings.api_key and settings.api_secret):
        return paste_instructions(urls, settings.vonage_number), None
    apps, numbers = clients(settings.api_key, settings.api_secret, api_host=settings.api_host,
                            rest_host=settings.rest_host)
    app_id = settings.application_id
    saved = load_previous(app_id)  # left by a lab whose kernel died before lab.stop()
    pointed = point_application(apps, numbers, app_id, urls, number=settings.vonage_number,
                                signed=bool(settings.signature_secret))
    previous = saved if saved is not None else pointed.previous
    note = pointed.describe()
    if not pointed.changes and saved is None:
        return note, None
    save_previous(app_id, previous or {})
    if saved is not None:
        note += "\n  (the URLs saved by a lab that did not stop are the ones lab.stop() restores)"
    else:
        note += "\n  lab.stop() puts the previous URLs back."

    def restore() -> None:
        restore_application(apps, app_id, previous or {})
        forget_previous(app_id)

    return note, restore
