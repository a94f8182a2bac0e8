"""Webhooks as the network delivers them: late, out of order, twice (issue 12).

Vonage promises no order and its retries duplicate (vonage-platform.md section 3), so what a call is
doing is decided by the statuses and their payload timestamps, not by arrival order, and the lab's
handlers run once per delivery. The event log (events.py) records a duplicate once and gives late
events a grace period in `wait_for`; this module holds the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any

from labkit.events import FINAL_STATUSES, Event, fingerprint

# Where a live status sits in a call's life, to order events with the same timestamp.
STATUS_RANK = {"started": 0, "ringing": 1, "answered": 2}
REPLY_TIMEOUT = 10.0  # seconds a duplicate waits for the first delivery's reply


def payload_time(event: Event) -> datetime:
    """When the platform says the event happened (its ISO `timestamp`), else when it arrived."""
    stamp = event.payload.get("timestamp")
    if isinstance(stamp, str):
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return event.received_at


def timeline_key(event: Event) -> tuple:
    """Sort key: when it happened, then its place in the call's life (same millisecond)."""
    return payload_time(event), STATUS_RANK.get(event.status or "", 3)


def current_status(events: Iterable[Event]) -> str | None:
    """A call's status from its status events, whatever order they arrived in: a final status wins
    whenever it arrived; otherwise the latest by payload timestamp (then by place in the call's life)."""
    best = None
    for e in events:
        status = e.payload.get("status")
        if e.kind != "event" or not status:
            continue
        key = (status in FINAL_STATUSES, payload_time(e), STATUS_RANK.get(status, 1.5), e.seq)
        if best is None or key > best[0]:
            best = (key, status)
    return best[1] if best else None


class OncePerDelivery:
    """Runs a webhook handler once per delivery: a duplicate (a retry, or the network repeating
    itself) gets the first one's reply, without running the user's code again. Bounded."""

    def __init__(self, limit: int = 5000) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, Future] = {}
        self._limit = limit

    def __call__(self, kind: str, payload: dict[str, Any], handle: Callable[[dict], Any]) -> Any:
        key = fingerprint(kind, payload)
        with self._lock:
            future = self._replies.get(key)
            first = future is None
            if first:
                future = self._replies[key] = Future()
                if len(self._replies) > self._limit:
                    self._replies.pop(next(iter(self._replies)))
        if not first:
            return future.result(timeout=REPLY_TIMEOUT)
        try:
            result = handle(payload)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(result)
        return result
