"""Socket links and their one-use tokens: who may open the lab's /socket, and for which call.

A socket URI is `.../socket?token=T&link=L`. The lab issues a fresh token each time it hands out a
connect script (answer webhook, event webhook, `lab.call`), tied to that hand-out's link and so to
its call, and usable once. A leaked or replayed answer webhook therefore gives away no lab-wide secret:
its token opens at most that one socket, once, and is worthless after the platform has used it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

TOKEN_TTL = 3600.0  # seconds an unused token stays valid (a call that rings for an hour is rare)
MAX_PENDING = 10_000  # unused tokens kept at most; the oldest go first


def is_lab_socket(uri: Any) -> bool:
    """Is `uri` one of the lab's socket links (path /socket, with a link parameter)?"""
    if not isinstance(uri, str):
        return False
    parsed = urlparse(uri)
    return parsed.path.endswith("/socket") and "link" in parse_qs(parsed.query)


class SocketLinks:
    """Tokens waiting for their one use, and link -> call bindings."""

    def __init__(self, changed: threading.Condition | None = None) -> None:
        self._pending: OrderedDict[str, tuple[str, float]] = OrderedDict()  # token -> (link, expires)
        self._links: dict[str, str] = {}
        self.changed = changed or threading.Condition()  # notified when a link is bound to a call
        self._lock = self.changed

    def url(self, ws_base: str, link: str | None = None) -> str:
        """A socket URI with a fresh one-use token for `link` (a new link when None)."""
        link = link or secrets.token_hex(6)
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            while self._pending and (len(self._pending) >= MAX_PENDING or next(iter(self._pending.values()))[1] < now):
                self._pending.popitem(last=False)
            self._pending[token] = (link, now + TOKEN_TTL)
        return f"{ws_base}/socket?" + urlencode({"token": token, "link": link})

    def use(self, token: str, link: str | None) -> bool:
        """Spend `token` on `link`: True once, for the link it was issued for, before it expires."""
        with self._lock:
            entry = self._pending.get(token)
            if entry is None or link is None or not hmac.compare_digest(entry[0].encode(), link.encode()):
                return False
            del self._pending[token]
            return entry[1] >= time.monotonic()

    def issue(self, ncco: list[dict[str, Any]], call_uuid: str | None = None, *,
              tokens: bool = True) -> list[dict[str, Any]]:
        """The script with every lab socket URI given a fresh link and token (bound to `call_uuid` if
        known). Other URIs are left alone; the input is not modified. With `tokens=False` the links carry
        no token (the socket refuses them): for a requester the lab cannot trust with one."""
        out = []
        for action in ncco:
            endpoints = action.get("endpoint") if isinstance(action, dict) else None
            if not isinstance(endpoints, list) or not any(
                    isinstance(e, dict) and is_lab_socket(e.get("uri")) for e in endpoints):
                out.append(action)
                continue
            fresh = []
            for endpoint in endpoints:
                if isinstance(endpoint, dict) and is_lab_socket(endpoint.get("uri")):
                    parsed = urlparse(endpoint["uri"])
                    base = urlunparse(parsed._replace(path=parsed.path[: -len("/socket")], query="", fragment=""))
                    uri = self.url(base) if tokens else f"{base}/socket?" + urlencode({"link": secrets.token_hex(6)})
                    endpoint = {**endpoint, "uri": uri}
                fresh.append(endpoint)
            out.append({**action, "endpoint": fresh})
        if call_uuid:
            self.bind(out, call_uuid)
        return out

    def bind(self, ncco: Iterable[dict[str, Any]], call_uuid: str) -> None:
        """Tie every lab socket URI in a call script to that call, so its recording knows its call."""
        for action in ncco:
            for endpoint in action.get("endpoint", []) if isinstance(action, dict) else []:
                uri = endpoint.get("uri", "") if isinstance(endpoint, dict) else ""
                if is_lab_socket(uri):
                    link = parse_qs(urlparse(uri).query)["link"][0]
                    with self._lock:
                        self._links.setdefault(link, call_uuid)
                        self.changed.notify_all()

    def call_for(self, link: str | None) -> str | None:
        return self._links.get(link) if link else None
