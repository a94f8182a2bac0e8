"""VONAGE_NUMBER and the lab's application: what the lab may change about the number, and putting it back.

A number serving another application, or forwarded to SIP or a phone (`voiceCallbackType` sip/tel, which
"are prioritised over the Voice capability set in your Application": vonage_numbers `UpdateNumberParams`,
[OAS-NUM]), belongs to something the user did not hand to the lab. The lab changes it only with consent
(`Lab.start(take_number=True)`, LABKIT_TAKE_NUMBER=1, `labkit setup --take-number`), as Vonage's CLI asks
before moving a linked number (vonage-cli `src/commands/apps/numbers/link.js`, "Number is already linked to
application [...]. Do you want to continue?"). Without it the lab says what the number serves, by name.

Every update re-sends the number's other fields as they are now (`moHttpUrl`, `voiceStatusCallback` and a
sip/tel forwarding that stays), as the CLI does by sending back the whole number it read (link.js): whether
`/number/update` clears a field left out is not documented (vonage-platform.md section 10). The number is
read raw (the SDK's `OwnedNumber` model drops fields it does not know) and written as the form the Numbers
API takes, through the SDK's own HTTP client, credentials and hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.errors import LabkitError

__all__ = ["TAKE_HINT", "NumberResult", "find_number", "forwarding", "link_number", "restore_number",
           "update_number", "where_to"]

TAKE_HINT = "Lab.start(take_number=True), or LABKIT_TAKE_NUMBER=1 in .env"
RESENT = ("moHttpUrl", "voiceStatusCallback", "moSmppSysType")  # the number's own fields, sent back as they are


@dataclass
class NumberResult:
    """What `link_number` did: lines for the user, and the number's link as found when the lab changed it."""

    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None  # saved with the application's fields; None: nothing to put back


def find_number(numbers_client: Any, number: str) -> dict[str, Any] | None:
    """The account's number `number` as the Numbers API lists it (raw JSON), or None."""
    http = numbers_client.http_client
    body = http.get(http.rest_host, "/account/numbers", {"pattern": number, "search_pattern": 0, "size": 100},
                    "basic") or {}
    return next((n for n in body.get("numbers") or [] if str(n.get("msisdn")) == number), None)


def forwarding(num: dict[str, Any]) -> tuple[str, str] | None:
    """(type, value) when the number's calls go to a SIP URI or a phone number instead of an application."""
    kind = num.get("voiceCallbackType")
    return (kind, str(num.get("voiceCallbackValue") or "")) if kind in ("sip", "tel") else None


def update_number(numbers_client: Any, num: dict[str, Any], app_id: str | None,
            forward: tuple[str, str] | None, *, clear_forwarding: bool = False) -> None:
    """POST /number/update with `app_id`, the number's other fields as they are now, and `forward` (or,
    with `clear_forwarding`, `voiceCallbackType=app`: the documented, deprecated value that routes calls to
    the application [OAS-NUM]; that it replaces a sip/tel forwarding is UNCONFIRMED)."""
    form: dict[str, str] = {"country": str(num["country"]), "msisdn": str(num["msisdn"])}
    if app_id:
        form["app_id"] = app_id
    form.update({k: str(num[k]) for k in RESENT if num.get(k)})
    if forward is not None:
        form["voiceCallbackType"], form["voiceCallbackValue"] = forward
    elif clear_forwarding and app_id:
        form["voiceCallbackType"], form["voiceCallbackValue"] = "app", app_id
    http = numbers_client.http_client
    reply = http.post(http.rest_host, "/number/update", form, "basic", "form") or {}
    if str(reply.get("error-code", "200")) != "200":
        raise LabkitError(f"The Numbers API did not update {num['msisdn']}: {reply.get('error-code')} "
                          f"{reply.get('error-code-label')}.")


def where_to(kind: str, value: str) -> str:
    """A forwarding in words: 'SIP URI sip:...' or 'phone number 44...'."""
    return f"{'SIP URI' if kind == 'sip' else 'phone number'} {value}"


def link_number(numbers_client: Any, application_id: str, number: str, *, take: bool = False,
                app_name: Any = None, before_change: Any = None, for_session: bool = True) -> NumberResult:
    """Link `number` to `application_id` when nobody else uses it, or when `take` says the user agreed.

    `app_name(id)` names another application for the messages (None when it cannot be read);
    `before_change(record)` gets the link as found before the number is changed (to be saved);
    `for_session=False` (labkit setup) words the change as lasting, since nothing puts it back."""
    result = NumberResult()
    number = number.lstrip("+")
    num = find_number(numbers_client, number)
    if num is None:
        result.problems.append(f"VONAGE_NUMBER {number} is not a number of this account: buy or pick one on "
                               "the dashboard (Numbers), or run `labkit setup`.")
        return result
    current = num.get("app_id") or None
    forward = forwarding(num)
    other = current if current and current != application_id else None
    if other is None and forward is None:
        if current != application_id:  # linked to nothing: VONAGE_NUMBER hands it to the lab
            update_number(numbers_client, num, application_id, None)
            result.changes.append(f"number {number} linked to this application (it was linked to none"
                                  + ("; it stays linked after lab.stop())" if for_session else ")"))
        return result
    name = app_name(other) if other and app_name else None
    named = f"another application, {name!r} ({other})" if name else f"another application ({other})"
    if not take:
        if other:
            result.problems.append(
                f"VONAGE_NUMBER {number} is linked to {named}: the lab left it there, so calls to it reach that "
                f"application, not the lab. To move it to the lab for this session (lab.stop() moves it back): "
                f"{TAKE_HINT}.")
        if forward:
            result.problems.append(
                f"VONAGE_NUMBER {number} forwards its calls to {where_to(*forward)} (voiceCallbackType "
                f"{forward[0]}, which Vonage puts before any application): calls to it never reach the lab. To "
                f"clear the forwarding for this session (lab.stop() puts it back): {TAKE_HINT}.")
        return result
    result.record = {"msisdn": number, "country": num.get("country"), "lab_app": application_id,
                     "other_name": name,
                     "before": {k: num.get(k) for k in ("app_id", "voiceCallbackType", "voiceCallbackValue")}}
    if before_change is not None:
        before_change(result.record)
    update_number(numbers_client, num, application_id, None, clear_forwarding=forward is not None)
    agreed, back = ("(you agreed: take_number)", "; lab.stop() {} it back") if for_session else ("(you agreed)", "")
    if other:
        result.changes.append(f"number {number} moved from {named} to this application {agreed}"
                              + back.format("moves"))
    elif current != application_id:
        result.changes.append(f"number {number} linked to this application (it was linked to none)")
    if forward:
        result.changes.append(f"number {number}: forwarding to {where_to(*forward)} cleared"
                              f"{' for this session' if for_session else ''} {agreed}" + back.format("puts"))
    return result


def restore_number(numbers_client: Any, record: dict[str, Any]) -> list[str]:
    """Put the number's link back as the lab found it, if it is still as the lab left it. Lines to show."""
    number = record["msisdn"]
    num = find_number(numbers_client, number)
    if num is None:
        return [f"number {number} is no longer on the account: nothing to put back"]
    if (num.get("app_id") or None) != record["lab_app"] or forwarding(num) is not None:
        now = forwarding(num)
        where = where_to(*now) if now else f"application {num.get('app_id') or 'none'}"
        return [f"number {number} kept as it is now ({where}): it was changed during the session"]
    before = record.get("before") or {}
    forward = forwarding(before)
    back_to = before.get("app_id") or None
    update_number(numbers_client, num, back_to, forward)
    lines = []
    if back_to and back_to != record["lab_app"]:
        name = record.get("other_name")
        lines.append(f"number {number} moved back to {repr(name) + ' ' if name else ''}({back_to})")
    elif not back_to:  # whether an update without app_id unlinks is not documented (vonage-cli's unlink.js
        # leaves app_id out to unlink): say what was sent, not what Vonage made of it
        lines.append(f"number {number} put back with no application named (it had none)")
    if forward:
        lines.append(f"number {number}: forwarding to {where_to(*forward)} put back")
    return lines
