"""Call-script helpers on top of the SDK's pydantic NCCO models.

Scripts may mix SDK models (`vonage_voice.Talk`, `Stream`, ...) and plain dicts (raw NCCO JSON);
`to_json` turns either into what goes on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit import validate
from labkit.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.facade import Lab

ACTIONS = {"talk", "stream", "connect", "conversation", "input", "record", "notify", "wait", "transfer"}


def to_json(ncco: Any) -> list[dict[str, Any]]:
    """NCCO models or dicts (or one of either) -> a JSON-ready list, with wire names (`from`, `content-type`).

    Dicts are checked against the SDK's pydantic NCCO models first (in lax mode, so the string-typed
    values that Vonage accepts and the PHP SDK sends, like "loop": "1", pass), then sent as written.
    """
    if ncco is None:
        return []
    if isinstance(ncco, Mapping) or hasattr(ncco, "model_dump"):
        items = [ncco]
    elif isinstance(ncco, (list, tuple)):
        items = list(ncco)
    else:
        raise InvalidInput(
            f"An NCCO is a list of actions (vonage_voice models like Talk(...), or dicts), not "
            f"{type(ncco).__name__}: for example ncco=[Talk(text='Hello')].")
    out: list[dict[str, Any]] = []
    for i, action in enumerate(items):
        if hasattr(action, "model_dump"):
            out.append(action.model_dump(by_alias=True, exclude_none=True, mode="json"))
        elif isinstance(action, Mapping):
            if action.get("action") not in ACTIONS:
                raise InvalidInput(
                    f"NCCO item {i} has action {action.get('action')!r}; expected one of {sorted(ACTIONS)}."
                )
            out.append(check_action(i, dict(action)))
        else:
            raise InvalidInput(
                f"NCCO item {i} is a {type(action).__name__}; use vonage_voice models (Talk, Stream, ...) or dicts."
            )
        if len(out) > validate.NCCO_MAX_ACTIONS:
            break  # refused below; checking 10,000 actions first would only waste time
    validate.ncco_size(items, len(json.dumps(out, separators=(",", ":"), default=str).encode()))
    return out


def check_action(index: int, action: dict[str, Any]) -> dict[str, Any]:
    """Raise InvalidInput if the SDK's model for this action refuses it, or if JSON cannot carry it."""
    import json

    from pydantic import ValidationError

    name = action["action"]
    try:
        json.dumps(action)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"NCCO item {index} ({name}) cannot be sent as JSON ({exc}): use only strings, "
                           "numbers, booleans, lists and dicts (a set or a tuple of sets is not JSON).") from None
    fields = _sdk_field_names(action)
    if name == "talk":
        from labkit.validate import talk_text

        talk_text(action.get("text"), f"NCCO item {index} (talk)")
        fields["text"] = re.sub(r"<[^>]+>", "", fields["text"]) if fields["text"].lstrip().startswith(
            "<speak") else fields["text"]  # Vonage's 1500-character limit does not count SSML tags
    if name == "connect" and "from_" not in fields and "randomFromNumber" not in fields:
        # The SDK insists on one of them; Vonage's reference has `from` optional (omitted for app users).
        fields["randomFromNumber"] = True
    try:
        _model(name).model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if not str(p).endswith('Endpoint')) or 'the action'}: "
            f"{err['msg']}" for err in _relevant(exc.errors(), action)[:3])
        raise InvalidInput(f"NCCO item {index} ({name}) is not valid: {problems}. Check it against the NCCO "
                           f"reference, or build it with vonage_voice.{_model(name).__name__}(...).") from None
    except Exception as exc:  # noqa: BLE001 - the SDK's own model validators raise VoiceError subclasses
        raise InvalidInput(f"NCCO item {index} ({name}) is not valid: {exc}") from None
    return action


def _relevant(errors: list[dict], action: dict[str, Any]) -> list[dict]:
    """Of pydantic's errors for a connect endpoint (one per endpoint model it tried), those of the model
    named by the endpoint's `type`."""
    endpoints = action.get("endpoint") if isinstance(action.get("endpoint"), list) else []
    kinds = {f"{str(ep.get('type', '')).capitalize()}Endpoint" for ep in endpoints if isinstance(ep, dict)}
    picked = [e for e in errors
              if not any(str(p).endswith("Endpoint") and str(p) not in kinds for p in e["loc"])]
    return picked or errors


def _sdk_field_names(value: Any) -> Any:
    """Wire names -> the SDK models' field names (`from` -> `from_`, `content-type` -> `contentType`)."""
    rename = {"from": "from_", "content-type": "contentType"}
    if isinstance(value, dict):
        return {rename.get(k, k): _sdk_field_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sdk_field_names(v) for v in value]
    return value


def _model(name: str):
    import vonage_voice

    return getattr(vonage_voice, name.capitalize())


def talk(text: str, *, language: str = "en-US", loop: int = 1, level: float = 0, barge_in: bool = False,
         style: int | None = None):
    """A `Talk` action (text-to-speech)."""
    from vonage_voice import Talk

    from labkit import validate

    validate.talk_text(text, "talk()")
    return Talk(text=text, language=validate.language(language), loop=validate.loop(loop),
                level=validate.level(level), bargeIn=barge_in or None,
                style=None if style is None else validate.style(style))


def stream(lab: Lab, file_or_url: str, *, loop: int = 1, level: float = 0, barge_in: bool = False):
    """A `Stream` action for a file the lab serves (bare name) or any URL."""
    from vonage_voice import Stream

    return Stream(streamUrl=[lab.audio_url(file_or_url)], loop=loop, level=level,
                  bargeIn=barge_in or None)


def keep_open(lab: Lab):
    """A silent stream looping until stopped: holds a call open for REST control (stream, talk)."""
    return stream(lab, "silence.mp3", loop=0)


def conversation(name: str, *, music: str | None = None, lab: Lab | None = None, start_on_enter: bool = True,
                 end_on_exit: bool = False, record: bool = False):
    """A named `Conversation` (conference), with hold music when `music` is given."""
    from vonage_voice import Conversation

    moh = [lab.audio_url(music)] if (music and lab is not None) else ([music] if music else None)
    return Conversation(name=name, musicOnHoldUrl=moh, startOnEnter=start_on_enter, endOnExit=end_on_exit,
                        record=record or None)


def websocket(lab: Lab, rate: int = 16000, headers: Mapping[str, Any] | None = None, *,
              event_type: str | None = None, from_number: str | None = None):
    """A `Connect` action that sends the call's audio to the lab's /socket endpoint.

    Always sets `content-type` (the SDK omits it by default; the platform requires it) and a `from`
    number (the SDK refuses a Connect without one).
    """
    from vonage_voice import Connect, WebsocketEndpoint

    from labkit.media.frames import content_type

    content = content_type(rate)
    merged = {"labkit": "1", **(dict(headers) if headers else {})}
    endpoint = WebsocketEndpoint(uri=lab.socket_url(), contentType=content, headers=merged)
    return Connect(endpoint=[endpoint], from_=from_number or lab.number, eventType=event_type,
                   eventUrl=[lab.url("/webhooks/event")])


def default_answer(lab: Lab, payload: Mapping[str, Any] | None = None) -> list:
    """The script a call gets when nobody gave one: a greeting, then silence that keeps the call open
    so the notebook can stream, talk and hang up over REST."""
    return [talk("Hello from labkit. This call stays open until you hang up."), keep_open(lab)]

