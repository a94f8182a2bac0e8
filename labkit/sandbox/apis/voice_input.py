"""`PUT`/`DELETE /v1/calls/{uuid}/input/dtmf`: the listener for asynchronous DTMF (vonage-platform.md s. 6).

`PUT` with `{"event_url": ["https://..."]}` makes every key pressed during an `input` with `mode:
asynchronous` go to that URL as its own input event; `DELETE` removes it; both answer 200 with no body
[OAS-VOICE]. UNCONFIRMED which encodings the server tolerates: Node and Java send an array, the docs'
curl a string, the PHP SDK the key `eventUrl` [NODE], [JAVA], [DOC-DTMF-SUB], [PHP]; all are accepted.
"""

from __future__ import annotations

from typing import Any

from labkit.sandbox.engine.exceptions import invalid
from labkit.sandbox.engine.platform import Platform


def add_dtmf_listener(p: Platform, uuid: str, body: Any) -> None:
    leg = p.live_leg(uuid)
    value = body.get("event_url", body.get("eventUrl")) if isinstance(body, dict) else None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise invalid("event_url", "Invalid value",
                      'event_url must be the URL for the key presses, e.g. {"event_url": ["https://example.com/dtmf"]}')
    with p.lock:
        leg.dtmf_listener = value


def remove_dtmf_listener(p: Platform, uuid: str) -> None:
    leg = p.live_leg(uuid)
    with p.lock:
        leg.dtmf_listener = None
