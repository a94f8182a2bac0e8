"""The Voice WebSocket's text messages, in one place for both sides (the lab and the sandbox).

The `clear` and `notify` command shapes are UNCONFIRMED by a primary source (see the reference,
section 5): they follow the AsyncAPI model of the current guide. Change them here only.
"""

from __future__ import annotations

import json
from typing import Any

CONNECTED = "websocket:connected"
DTMF = "websocket:dtmf"
CLEARED = "websocket:cleared"
NOTIFY_EVENT = "websocket:notify"
CLEAR_ACTION = "clear"
NOTIFY_ACTION = "notify"


def connected(content_type: str, headers: dict[str, Any] | None = None) -> str:
    """First message from the platform: the content type plus the NCCO headers flattened to the top."""
    return json.dumps({"event": CONNECTED, "content-type": content_type, **(headers or {})})


def dtmf(digit: str, duration_ms: int = 260) -> str:
    return json.dumps({"event": DTMF, "digit": digit, "duration": duration_ms})


def clear_command() -> str:
    """App -> platform: stop playback and drop queued audio (UNCONFIRMED shape)."""
    return json.dumps({"action": CLEAR_ACTION})


def cleared() -> str:
    return json.dumps({"event": CLEARED})


def notify_command(payload: dict[str, Any]) -> str:
    """App -> platform: tell me when the audio queued before this has played (UNCONFIRMED shape)."""
    return json.dumps({"action": NOTIFY_ACTION, "payload": payload})


def notified(payload: Any) -> str:
    return json.dumps({"event": NOTIFY_EVENT, "payload": payload})


def parse(text: str) -> dict[str, Any]:
    """A text message as a dict; anything that is not a JSON object becomes {"event": "unknown"}."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"event": "unknown", "text": text[:200]}
    return value if isinstance(value, dict) else {"event": "unknown", "value": value}
