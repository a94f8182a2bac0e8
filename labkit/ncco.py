"""Call-script helpers on top of the SDK's pydantic NCCO models.

Scripts may mix SDK models (`vonage_voice.Talk`, `Stream`, ...) and plain dicts (raw NCCO JSON);
`to_json` turns either into what goes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab import Lab

ACTIONS = {"talk", "stream", "connect", "conversation", "input", "record", "notify", "wait", "transfer"}


def to_json(ncco: Any) -> list[dict[str, Any]]:
    """NCCO models or dicts (or one of either) -> a JSON-ready list, with wire names (`from`, `content-type`)."""
    if ncco is None:
        return []
    items = [ncco] if isinstance(ncco, Mapping) or hasattr(ncco, "model_dump") else list(ncco)
    out: list[dict[str, Any]] = []
    for i, action in enumerate(items):
        if hasattr(action, "model_dump"):
            out.append(action.model_dump(by_alias=True, exclude_none=True, mode="json"))
        elif isinstance(action, Mapping):
            if action.get("action") not in ACTIONS:
                raise InvalidInput(
                    f"NCCO item {i} has action {action.get('action')!r}; expected one of {sorted(ACTIONS)}."
                )
            out.append(dict(action))
        else:
            raise InvalidInput(
                f"NCCO item {i} is a {type(action).__name__}; use vonage_voice models (Talk, Stream, ...) or dicts."
            )
    return out


def talk(text: str, *, language: str = "en-US", loop: int = 1, level: float = 0, barge_in: bool = False,
         style: int | None = None):
    """A `Talk` action (text-to-speech)."""
    from vonage_voice import Talk

    return Talk(text=text, language=language, loop=loop, level=level, bargeIn=barge_in or None, style=style)


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

