"""What a person reads, in words: webhook values and event tables without Python's braces, brackets,
quotes or True/False. A foundation: the event log, the widgets and the sandbox's page all show events.
"""

from __future__ import annotations

import html
from typing import Any


def readable(value: Any) -> str:
    """A webhook field as a person reads it, not as Python prints it: `{'digits': '7', 'timed_out': False}`
    reads "digits 7, timed out no", `['7']` reads "7", an NCCO reads "2 actions: talk, stream"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if value.get("type") and len(value) <= 3:  # an endpoint: {"type": "phone", "number": "4477..."}
            rest = [readable(v) for k, v in value.items() if k != "type" and v not in (None, "")]
            return " ".join([str(value["type"]), *rest])
        return ", ".join(f"{str(k).replace('_', ' ')} {readable(v)}" for k, v in value.items()
                         if v not in (None, "", [], {}))
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) and "action" in v for v in value):
            return f"{len(value)} action{'s' if len(value) != 1 else ''}: " + ", ".join(str(v["action"]) for v in value)
        return ", ".join(readable(v) for v in value)
    return str(value)


def leg_cell(event: Any) -> str:
    """The call column: the leg's short id, and which leg it is when it is the WebSocket's."""
    short = (event.uuid or "")[:8]
    return f"{short} (WebSocket leg)" if short and is_websocket_leg(event.payload) else short


def events_table(events: list[Any]) -> str:
    """The events as an HTML table: one row each, every cell in words (`EventLog._repr_html_`)."""
    cells = []
    for e in events:
        detail = "; ".join(f"{k.replace('_', ' ')}: {readable(v)}" for k, v in e.payload.items()
                           if k not in ("uuid", "status", "conversation_uuid", "timestamp", "from", "to")
                           and v not in (None, "", [], {}))  # empty fields say nothing
        cells.append(
            "<tr>" + "".join(f"<td style='white-space:nowrap'>{html.escape(str(c))}</td>" for c in (
                f"{e.received_at:%H:%M:%S.%f}"[:-3], e.kind, leg_cell(e), e.status,
                party(e.payload.get("from", "")), party(e.payload.get("to", "")),
            )) + f"<td>{html.escape(detail[:200])}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("time", "kind", "call", "status", "from", "to", "detail"))
    return (f"<table class='labkit-events'><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}"
            f"</tbody></table><small>{len(cells)} events</small>")


def is_websocket_leg(payload: dict) -> bool:
    """Is this webhook about the call's WebSocket leg (the leg a `connect` to a WebSocket adds)? Its events
    name the socket's URI as `to` (the sandbox does; on Vonage UNCONFIRMED, so a `{"type": "websocket"}`
    endpoint counts too)."""
    for key in ("to", "from"):
        value = payload.get(key)
        if isinstance(value, dict) and value.get("type") == "websocket":
            return True
        if isinstance(value, str) and value.lower().startswith(("ws://", "wss://")):
            return True
    return False


def party(value: Any) -> str:
    """A `from`/`to` value in words: a WebSocket URI without its query (the lab's one-use token), else
    `readable`."""
    if isinstance(value, str) and value.lower().startswith(("ws://", "wss://")):
        return "WebSocket " + value.split("?", 1)[0]
    return readable(value)
