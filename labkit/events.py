"""The event log: every webhook the lab receives, kept in arrival order, thread-safe.

Webhook threads append; notebook code waits on it and widgets subscribe to it. Nothing else holds
call state, so what a user sees is exactly what the platform sent.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit.errors import WaitTimeout
from labkit.readable import events_table, is_websocket_leg, readable

# Statuses after which a call can no longer change: waiting for anything else is pointless.
FINAL_STATUSES = frozenset(
    {"completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered"}
)
_seq = itertools.count(1)
# Vonage does not promise order, and retries duplicate (vonage-platform.md section 3; issue 12): a status
# may arrive after the final one. A wait that saw the final status gives late events this long (seconds
# after the final one arrived) before it gives up; UNCONFIRMED how late Vonage's can be.
REORDER_GRACE = 2.0
# Final statuses that mean the call was never answered: waiting for 'answered' after one is pointless.
NEVER_ANSWERED = FINAL_STATUSES - {"completed"}
DEDUPED_KINDS = frozenset({"event", "answer"})  # webhooks, which the platform may deliver twice


@dataclass(frozen=True)
class Event:
    """One webhook (or WebSocket event) as received: arrival time, call uuid, status and raw payload."""

    kind: str  # "answer", "event", "socket", ...
    payload: dict[str, Any]
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    seq: int = field(default_factory=lambda: next(_seq))

    @property
    def uuid(self) -> str | None:
        """The call leg this event is about (`call_uuid` on machine-detection events)."""
        return self.payload.get("uuid") or self.payload.get("call_uuid")

    @property
    def conversation_uuid(self) -> str | None:
        return self.payload.get("conversation_uuid")

    @property
    def status(self) -> str | None:
        """The call status, or what kind of event this is when it carries none (input, record...)."""
        if self.payload.get("status"):
            return self.payload["status"]
        for key in ("dtmf", "speech"):
            if key in self.payload:
                return "input"
        if "recording_url" in self.payload:
            return "record"
        if "reason" in self.payload and self.kind == "event":
            return "error"
        return self.payload.get("event") or self.kind

    def belongs_to(self, uuid: str | None, conversation_uuid: str | None = None) -> bool:
        """Is this event about call leg `uuid`? Events that name no leg (record, error) count for the
        call whose conversation they name."""
        if uuid is None or self.uuid == uuid:
            return True
        return self.uuid is None and conversation_uuid is not None and self.conversation_uuid == conversation_uuid

    def summary(self) -> str:
        """One line for logs and widgets; never includes secrets (webhooks carry none)."""
        extra = ""
        p = self.payload
        if "dtmf" in p and isinstance(p["dtmf"], dict):
            extra = f" digits {readable(p['dtmf'].get('digits')) or '(none)'}"
        elif "digit" in p:
            extra = f" digit {readable(p['digit'])}"
        elif "reason" in p:
            extra = f" ({readable(p['reason'])})"
        elif "detail" in p:
            extra = f" ({readable(p['detail'])})"
        elif "recording_url" in p:
            extra = f" recording={p['recording_url']}"
        uuid = (self.uuid or "")[:8]
        leg = " (WebSocket leg)" if is_websocket_leg(p) else ""
        return f"{self.received_at:%H:%M:%S.%f}"[:-3] + f" {self.kind:<6} {uuid:<8} {self.status}{extra}{leg}"


def _write_all(fd: int, data: bytes) -> int:
    """Write all of `data` to `fd`, or raise: a short write (a filling disk) is continued, and the write
    after it then raises ENOSPC, which the caller turns into a cut-back."""
    view = memoryview(data)
    done = 0
    while done < len(data):
        n = os.write(fd, view[done:])
        if n <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        done += n
    return done


def fingerprint(kind: str, payload: dict[str, Any]) -> str:
    """What makes two webhooks the same delivery (a retry or a duplicate): kind and whole payload."""
    import json

    return kind + json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


DEFAULT_WINDOW = 10_000  # events kept in memory (LABKIT_EVENT_WINDOW); all of them are in the journal
DEFAULT_TEXT_LIMIT = 4096  # characters of one text value kept in memory (LABKIT_EVENT_TEXT_LIMIT)


def _shorten(value: Any, limit: int) -> tuple[Any, int]:
    """`value` with every string longer than `limit` cut, and how many were cut (nested dicts and lists too)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… [truncated: {len(value)} characters in all; the full text is in the journal]", 1
    if isinstance(value, dict):
        cut = 0
        out = {}
        for k, v in value.items():
            out[k], n = _shorten(v, limit)
            cut += n
        return (out, cut) if cut else (value, 0)
    if isinstance(value, list):
        pairs = [_shorten(v, limit) for v in value]
        cut = sum(n for _, n in pairs)
        return ([v for v, _ in pairs], cut) if cut else (value, 0)
    return value, 0


class EventLog:
    """Thread-safe, append-only list of events with waiting and subscriptions.

    A live log keeps the last `window` events in memory and, with a `journal` path, writes every event in
    full to an append-only JSON-lines file (`history()` reads it back), so memory stays flat on a long
    session and nothing is lost. Text values longer than `text_limit` are cut in memory, with their size.
    """

    def __init__(self, events: Iterable[Event] = (), *, window: int | None = None,
                 journal: str | os.PathLike | None = None, text_limit: int | None = None):
        self._events: deque[Event] = deque(events, maxlen=window)
        self._fingerprints: dict[str, Event] = {}  # webhook deliveries seen (bounded: see add)
        self._cond = threading.Condition()
        self._subscribers: list[Callable[[Event], None]] = []
        self.window = window
        self.text_limit = text_limit
        self.journal = Path(journal) if journal is not None else None
        self.journal_error: str | None = None
        self.history_skipped = 0  # lines the last history() could not read (torn)
        self._journal_fd: int | None = None

    # -- writing -----------------------------------------------------------------------------
    def add(self, kind: str, payload: dict[str, Any]) -> Event:
        """Record one event and tell subscribers (their errors are swallowed: a widget must not
        break the webhook that fed it)."""
        payload = dict(payload)
        key = fingerprint(kind, payload) if kind in DEDUPED_KINDS else None
        with self._cond:  # seq and time are taken under the lock, so seq order is append order
            event = Event(kind=kind, payload=payload, received_at=datetime.now(timezone.utc), seq=next(_seq))
            if key is not None:  # a duplicate delivery is recorded once
                seen = self._fingerprints.get(key)
                if seen is not None:
                    return seen
                self._fingerprints[key] = event
                if len(self._fingerprints) > 20000:
                    self._fingerprints.pop(next(iter(self._fingerprints)))
            had_error = self.journal_error
            self._write_journal(event)
            if self.text_limit is not None:
                short, cut = _shorten(payload, self.text_limit)
                if cut:
                    event = Event(kind=kind, payload=short, received_at=event.received_at, seq=event.seq)
            self._events.append(event)
            added = [event]
            if self.journal_error and not had_error:  # say so once, in the log itself, after the event
                added.append(Event(kind="lab", payload={"status": "journal-stopped", "reason": self.journal_error},
                                   received_at=datetime.now(timezone.utc), seq=next(_seq)))
                self._events.append(added[-1])
            subscribers = list(self._subscribers)
            self._cond.notify_all()
        for item in added:
            for fn in subscribers:
                try:
                    fn(item)
                except Exception:  # noqa: BLE001 - subscribers are UI code; never break delivery
                    pass
        return event

    def _write_journal(self, event: Event) -> None:
        """Append the whole event to the journal as one line, or nothing of it (lock held).

        One `os.write` of the whole line on an O_APPEND descriptor; when the disk fills mid-line (a short
        write, or ENOSPC), the file is cut back to where the line began, so the journal never holds half a
        line. A journal that cannot be written is reported once (`journal_error` and a 'journal-stopped'
        event) and is never raised into a webhook: the events stay in memory.
        """
        if self.journal is None or self.journal_error is not None:
            return
        line = (json.dumps({"seq": event.seq, "time": event.received_at.isoformat(), "kind": event.kind,
                            "payload": event.payload}, default=str) + "\n").encode("utf-8")
        start: int | None = None
        try:
            if self._journal_fd is None:
                self.journal.parent.mkdir(parents=True, exist_ok=True)
                self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            start = os.fstat(self._journal_fd).st_size
            _write_all(self._journal_fd, line)
        except OSError as exc:
            self.journal_error = (f"the event journal {self.journal} cannot be written ({exc}); the events from "
                                  f"seq {event.seq} on stay in memory only")
            self._cut_back(start)

    def _cut_back(self, start: int | None) -> None:
        """After a failed write, cut the journal back to `start` (the line's beginning) and close it."""
        fd, self._journal_fd = self._journal_fd, None
        if fd is None:
            return
        try:
            if start is not None:
                os.ftruncate(fd, start)  # frees blocks, so it works on a full disk
        except OSError:
            pass  # history() skips a torn last line anyway, and says so
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def history(self) -> Iterator[Event]:
        """Every event since the log started, in full, from the journal (or the memory window without one).

        A line that is not whole JSON (cut short by a kill -9 mid-write, or a full disk on another version)
        is skipped: `history_skipped` counts them and a last 'lab' event, status 'journal-torn', says which
        lines, so a torn journal never makes history() raise.
        """
        self.history_skipped = 0
        if self.journal is None or not self.journal.is_file():
            yield from self
            return
        torn: list[int] = []
        with open(self.journal, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    event = Event(kind=row["kind"], payload=row["payload"], seq=row["seq"],
                                  received_at=datetime.fromisoformat(row["time"]))
                except (ValueError, KeyError, TypeError):
                    torn.append(number)
                    continue
                yield event
        if torn:
            self.history_skipped = len(torn)
            where = ", ".join(map(str, torn[:10])) + (" ..." if len(torn) > 10 else "")
            yield Event(kind="lab", payload={
                "status": "journal-torn", "lines": torn[:100],
                "reason": f"{len(torn)} line(s) of {self.journal} are not whole events (line {where}): skipped. "
                          "A full disk or a killed kernel cut them; every other event is here."})

    def close(self) -> None:
        """Close the journal (the lab does this when it stops). Never raises: every line is already written
        whole (there is no buffer to flush), and a descriptor that fails to close has nothing left to lose."""
        with self._cond:
            fd, self._journal_fd = self._journal_fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call `fn(event)` for every new event (on the webhook's thread); returns an unsubscribe."""
        with self._cond:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._cond:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def clear(self) -> None:
        with self._cond:
            self._events.clear()

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        with self._cond:
            return iter(list(self._events))

    def __getitem__(self, index):
        with self._cond:
            if isinstance(index, slice):
                return list(self._events)[index]
            return self._events[index]

    def filter(self, uuid: str | None = None, *, kind: str | None = None,
               conversation_uuid: str | None = None) -> EventLog:
        """A snapshot holding only the events of one call (and/or of one kind)."""
        with self._cond:
            picked = [
                e for e in self._events
                if (uuid is None or e.uuid == uuid)
                and (kind is None or e.kind == kind)
                and (conversation_uuid is None or e.conversation_uuid == conversation_uuid)
            ]
        return EventLog(picked)

    def for_call(self, uuid: str, conversation_uuid: str | None = None) -> EventLog:
        """A snapshot of one call's events, including the leg-less ones of its conversation."""
        with self._cond:
            return EventLog([e for e in self._events if e.belongs_to(uuid, conversation_uuid)])

    def statuses(self, uuid: str | None = None) -> list[str]:
        return [e.status or "" for e in self.filter(uuid)]

    def wait_for(self, status: str | Callable[[Event], bool], *, uuid: str | None = None,
                 conversation_uuid: str | None = None, timeout: float = 30.0, after: int = 0) -> Event:
        """Block until an event with `status` (or matching a predicate) arrives for `uuid` (leg-less
        events of `conversation_uuid` count too: record and error events name no leg).

        Events already received count, so waiting after the fact works. Raises WaitTimeout listing
        the statuses that did arrive, and stops early when the call ended without it.
        """
        match = status if callable(status) else (lambda e: e.status == status)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ended = None
                for event in self._events:
                    if event.seq <= after or not event.belongs_to(uuid, conversation_uuid):
                        continue
                    if match(event):
                        return event
                    if event.kind == "event" and event.status in FINAL_STATUSES:
                        ended = event
                remaining = deadline - time.monotonic()
                if ended is not None and not callable(status) and status not in FINAL_STATUSES:
                    # decided by the statuses: never answered means 'answered' will not come; other
                    # events may still be on their way (no order promised), for REORDER_GRACE
                    late = (datetime.now(timezone.utc) - ended.received_at).total_seconds()
                    if (status == "answered" and ended.status in NEVER_ANSWERED) or late >= REORDER_GRACE:
                        raise WaitTimeout(self._timeout_message(status, uuid, timeout, ended=ended))
                    if remaining > 0:
                        remaining = min(remaining, REORDER_GRACE - late)
                if remaining <= 0:
                    raise WaitTimeout(self._timeout_message(status, uuid, timeout))
                self._cond.wait(remaining)

    def _timeout_message(self, status, uuid, timeout, ended: Event | None = None) -> str:
        what = status if isinstance(status, str) else getattr(status, "__name__", "a matching event")
        seen = [e.status for e in self._events if uuid is None or e.uuid == uuid]
        call = f" for call {uuid}" if uuid else ""
        if ended is not None:
            detail = f" ({ended.payload.get('detail')})" if ended.payload.get("detail") else ""
            return (f"The call ended with '{ended.status}'{detail} before '{what}' arrived{call}. "
                    f"Statuses received: {', '.join(seen) or 'none'}.")
        hint = ("" if seen else " No webhook reached the lab at all: check that the event URL is the lab's "
                "public URL (lab.public_url) and that the tunnel is up.")
        return (f"No '{what}' event within {timeout:g} s{call}. Statuses received: "
                f"{', '.join(s or '?' for s in seen) or 'none'}.{hint}")

    # -- display -----------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Plain dicts (time, kind, uuid, status, detail) for tables and DataFrames."""
        out = []
        for e in self:
            detail = {k: v for k, v in e.payload.items()
                      if k not in ("uuid", "status", "conversation_uuid", "timestamp")}
            out.append({"time": e.received_at, "kind": e.kind, "uuid": e.uuid, "status": e.status,
                        "detail": detail})
        return out

    def __repr__(self) -> str:
        lines = [e.summary() for e in self]
        return f"EventLog({len(lines)} events)" + ("\n" + "\n".join(lines[-20:]) if lines else "")

    def _repr_html_(self) -> str:
        return events_table(list(self))
