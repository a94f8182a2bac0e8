"""The Vonage application follows the lab: its voice webhooks point at the lab, its number is linked.

Both modes do this the same way, through the Application API v2 and the Numbers API with the
account's API key and secret (HTTP Basic), using the real SDK's `vonage_application` and
`vonage_numbers` clients (what `vonage.Vonage(Auth(api_key, api_secret))` builds). The update is a
read-modify-write of the whole application, as every documented workflow does (vonage-platform.md,
"PUT semantics"). In live mode what the lab changes is saved under LABKIT_HOME before it changes
(labkit.live.saved), so `lab.stop()` (or the next start after a crashed kernel) puts it back, field by
field and only where the lab's value is still there; the number moves only with consent
(labkit.live.number_link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.errors import AuthenticationError, ConfigError, LabkitError
from labkit.live.number_link import link_number, restore_number
from labkit.live.saved import forget_previous, load_previous, save_previous, saved_path

__all__ = ["DASHBOARD_APP", "DASHBOARD_NUMBER", "LabUrls", "Pointed", "app_name", "check_recording_host", "clients",
           "follow_lab", "forget_previous", "load_previous", "paste_instructions", "point_application",
           "restore_application", "save_previous", "saved_path"]

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
    """What `point_application` changed: lines for the user, and what to put back field by field."""

    application_id: str
    changes: list[str] = field(default_factory=list)
    previous: dict[str, Any] | None = None  # capabilities.voice before the change (wire form)
    problems: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"before": ..., "lab": ...}
    voice_added: bool = False  # the application had no voice capability before
    number: dict[str, Any] | None = None  # the number's link as found, when the lab changed it (number_link)

    def record(self) -> dict[str, Any]:
        """What labkit.live.saved keeps for `lab.stop()` and for the start after a crashed kernel."""
        return {"fields": self.fields, "voice_added": self.voice_added, "number": self.number}

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


def app_name(app_client: Any, application_id: str) -> str | None:
    """An application's name, for messages that must say which one (None when it cannot be read)."""
    try:
        return _get_raw(app_client, application_id).get("name") or None
    except Exception:  # noqa: BLE001 - only a label: the message then gives the id alone
        return None


def _same_hook(current: Any, lab: dict[str, Any]) -> bool:
    """Does a webhook still hold the lab's value? Address and method decide (timeouts may be re-filled)."""
    return isinstance(current, dict) and current.get("address") == lab["address"] \
        and (current.get("http_method") or lab["http_method"]) == lab["http_method"]


def point_application(app_client: Any, numbers_client: Any, application_id: str, urls: LabUrls, *,
                      number: str | None = None, signed: bool | None = None, take_number: bool = False,
                      before_change: Any = None) -> Pointed:
    """Point the application's voice webhooks at `urls`, turn signed callbacks on when `signed`, and
    link `number` to it (moving it from another application, or clearing a sip/tel forwarding, only with
    `take_number`: labkit.live.number_link). Each field changed is noted with its value before and the
    lab's, so stop can put back exactly those; `before_change(record)` is called before each write (live
    mode saves it: a kernel that dies mid-way still leaves what to put back). Raises AuthenticationError /
    ConfigError in plain words."""
    import copy

    from vonage_http_client import errors as http_errors

    result = Pointed(application_id)
    try:
        app = _get_raw(app_client, application_id)
        caps = app.setdefault("capabilities", {}) or {}
        app["capabilities"] = caps
        result.voice_added = not caps.get("voice")
        voice = caps.get("voice") or {}
        result.previous = copy.deepcopy(voice)
        hooks = dict(voice.get("webhooks") or {})
        wanted = {"answer_url": (urls.answer_url, "GET"), "event_url": (urls.event_url, "POST"),
                  "fallback_answer_url": (urls.fallback_url, "GET")}
        for name, (address, method) in wanted.items():
            current = hooks.get(name) or {}
            lab = {"address": address, "http_method": method}
            if not _same_hook(current, lab):
                result.changes.append(f"{name} {current.get('address') or 'unset'} -> {address} ({method})")
                result.fields[name] = {"before": copy.deepcopy(hooks.get(name)), "lab": lab}
            hooks[name] = _check_url(current, address, method)
        voice["webhooks"] = hooks
        if signed and voice.get("signed_callbacks") is False:
            result.changes.append("signed callbacks off -> on")
            result.fields["signed_callbacks"] = {"before": False, "lab": True}
            voice["signed_callbacks"] = True
        caps["voice"] = voice
        if result.changes:
            if before_change is not None:
                before_change(result.record())
            _put_raw(app_client, application_id, app)
        if number:
            def saving(number_record: dict[str, Any]) -> None:
                result.number = number_record
                if before_change is not None:
                    before_change(result.record())

            linked = link_number(numbers_client, application_id, number, take=take_number,
                                 app_name=lambda other: app_name(app_client, other), before_change=saving)
            result.changes += linked.changes
            result.problems += linked.problems
            result.number = linked.record
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


def restore_application(app_client: Any, application_id: str, record: dict[str, Any],
                        numbers_client: Any = None) -> list[str]:
    """Put back what the lab changed (`record`, see labkit.live.saved), field by field, and only where the
    field still holds the lab's value: anything changed meanwhile (a dashboard edit) stays; then the
    number's link (labkit.live.number_link), even when the application could not be put back. Lines to show.

    A version-1 record (`{"voice": ...}`) puts the whole voice capability back, as older labkit did."""
    lines: list[str] = []
    try:
        lines += _restore_voice(app_client, application_id, record)
    finally:
        if record.get("number") and numbers_client is not None:
            lines += restore_number(numbers_client, record["number"])
    return lines


def _restore_voice(app_client: Any, application_id: str, record: dict[str, Any]) -> list[str]:
    fields = record.get("fields") or {}
    if not fields and "voice" not in record:
        return []
    app = _get_raw(app_client, application_id)
    caps = app.get("capabilities") or {}
    app["capabilities"] = caps
    if "fields" not in record:  # version 1
        if record["voice"]:
            caps["voice"] = record["voice"]
        else:
            caps.pop("voice", None)
        _put_raw(app_client, application_id, app)
        return ["voice webhooks put back as saved"]
    voice = caps.get("voice")
    if not isinstance(voice, dict):
        return ["voice capability removed during the session: left as it is"]
    hooks = voice.get("webhooks") or {}
    lines: list[str] = []
    changed = kept = False
    for name, saved in fields.items():
        before, lab = saved.get("before"), saved.get("lab")
        if name == "signed_callbacks":
            if voice.get("signed_callbacks") is True:
                voice["signed_callbacks"] = before
                lines.append("signed callbacks put back (off)")
                changed = True
            else:
                lines.append("signed callbacks kept as they are now (changed during the session)")
                kept = True
        elif _same_hook(hooks.get(name), lab):
            if before:
                hooks[name] = before
            else:
                hooks.pop(name, None)
            lines.append(f"{name} put back ({(before or {}).get('address') or 'unset'})")
            changed = True
        else:
            now = hooks.get(name)
            lines.append(f"{name} kept as it is now ({(now or {}).get('address') or 'unset'}): it was changed "
                         "during the session")
            kept = True
    if changed:
        if record.get("voice_added") and not hooks and not kept:
            caps.pop("voice", None)  # the lab added the capability, and nothing else was put in it since
        else:
            voice["webhooks"] = hooks
        _put_raw(app_client, application_id, app)
    return lines


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


def paste_instructions(urls: LabUrls, number: str | None, signed: bool = False) -> str:
    """Without an API key and secret: what to paste where on the dashboard (and, with a signature secret
    set, to turn signed callbacks on: the lab then answers unsigned webhooks 503)."""
    lines = [
        "The lab cannot update your Vonage application (set VONAGE_API_KEY and VONAGE_API_SECRET to let it).",
        f"Paste these in {DASHBOARD_APP}:",
        f"  Answer URL    {urls.answer_url}   (HTTP GET)",
        f"  Event URL     {urls.event_url}   (HTTP POST)",
        f"  Fallback URL  {urls.fallback_url}   (HTTP GET)",
    ]
    if signed:  # the dashboard's wording for `signed_callbacks` is UNCONFIRMED: named by the API's field
        lines.append("  and turn signed callbacks on there (signed_callbacks: VONAGE_SIGNATURE_SECRET is set, so "
                     "the lab refuses unsigned webhooks)")
    if number:
        lines.append(f"and link {number} to the application: {DASHBOARD_NUMBER}.")
    return "\n".join(lines)


def follow_lab(settings: Any, public_url: str, *, take_number: bool = False) -> tuple[str, Any]:
    """Live mode: point the application at `public_url` and link VONAGE_NUMBER (with the API key and
    secret), or say what to paste where (without). Returns (the short block to print, restore or None);
    `restore()` returns the lines saying what it put back and what it left.

    What a lab whose kernel died had changed is put back first (as its stop would have), so the
    application as found is the user's own again before this lab notes what it changes."""
    urls = LabUrls.for_base(public_url)
    if not (settings.api_key and settings.api_secret):
        return paste_instructions(urls, settings.vonage_number, bool(settings.signature_secret)), None
    apps, numbers = clients(settings.api_key, settings.api_secret, api_host=settings.api_host,
                            rest_host=settings.rest_host)
    app_id = settings.application_id
    recovered: list[str] = []
    dead = load_previous(app_id)  # left by labs whose kernel died before lab.stop()
    for path, saved in dead:
        recovered += restore_application(apps, app_id, saved, numbers)
        forget_previous(app_id, path)
    pointed = point_application(apps, numbers, app_id, urls, number=settings.vonage_number,
                                signed=bool(settings.signature_secret), take_number=take_number,
                                before_change=lambda record: save_previous(app_id, record))
    note = pointed.describe()
    if dead:
        note += "\n  A lab that did not stop (its kernel died) had changed this application; put back first:"
        note += "".join(f"\n    - {line}" for line in recovered or ["nothing left to put back"])
    if not pointed.fields and pointed.number is None:
        return note, None
    note += "\n  lab.stop() puts back what the lab changed, where it still holds the lab's value."

    def restore() -> list[str]:
        lines = restore_application(apps, app_id, pointed.record(), numbers)
        forget_previous(app_id)
        return lines

    return note, restore
