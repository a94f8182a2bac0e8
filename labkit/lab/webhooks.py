"""What the lab does with the platform's webhooks: the answer and event handlers the user sets, the NCCOs
it serves (noted for the call timeline), and the inbound calls the answer webhook brings (`wait_for_call`).
`LabWebhooks` is mixed into `labkit.lab.facade.Lab`, whose calls, socket hub and event log it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from labkit.errors import WaitTimeout
from labkit.lab.calls import Call
from labkit.lab.ncco import default_answer, to_json

__all__ = ["ANSWER_SOCKET_TIMEOUT", "UNSIGNED_SOCKETS_NOTE", "LabWebhooks"]

#: Seconds Vonage waits for the answer webhook's reply by default: the application's answer_url
#: `socket_timeout`, 1000-5000 ms, default 5000 [OAS-APP] (reference/vonage-platform.md, Voice capability);
#: Vonage's troubleshooting guide: the NCCO "should be returned within 5 seconds", else Vonage retries and
#: then tries the fallback answer URL. An application set to less: `lab.answer_timeout = <seconds>`.
ANSWER_SOCKET_TIMEOUT = 5.0

#: How to hand socket tokens to unsigned answer requests anyway (the start warning says it too).
UNSIGNED_SOCKETS_NOTE = ("Until then, answer requests get call scripts whose socket links carry no token, so calls "
                         "cannot open the lab's WebSocket; to allow it anyway (anyone who finds the URL can then "
                         "open one, and a recording), set LABKIT_UNSIGNED_SOCKETS=1.")


class LabWebhooks:
    """The answer and event webhooks' handling, and waiting for inbound calls."""

    def on_answer(self, fn: Callable[[dict], Any] | None) -> Callable[[dict], Any] | None:
        """Replace the answer handler: `fn(fields)` returns NCCO models or dicts. Usable as a decorator.
        `on_answer(None)` restores the default."""
        self._answer_fn = fn
        return fn

    def on_event(self, fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Add an event handler. For instruction events (input, notify, disconnected...) the first
        handler returning an NCCO replaces the rest of the call's script."""
        self._event_fns.append(fn)
        return fn

    def clear_handlers(self) -> None:
        self._answer_fn = None
        self._event_fns.clear()

    def _on_answer_webhook(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return self._once("answer", payload, self._answer_webhook)  # duplicates get the first reply

    def _on_event_webhook(self, payload: dict[str, Any]) -> list[dict[str, Any]] | None:
        return self._once("event", payload, self._event_webhook)

    def _answer_webhook(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        uuid = payload.get("uuid")
        self._note_region(payload)  # where this call is controlled (labkit.lab.regions)
        # An outbound call's answer webhook can arrive before lab.call() has its REST reply and registers
        # the call (a phone that answers at once): a call from a number the lab calls from, to another
        # number, is that, not an inbound call for wait_for_call().
        caller, callee = (str(payload.get(k, "")).lstrip("+") for k in ("from", "to"))
        inbound = callee == self.number or caller not in self._senders
        if uuid and uuid not in self.calls and inbound:
            with self._inbound:
                self.calls[uuid] = Call(self, uuid, conversation_uuid=payload.get("conversation_uuid"),
                                        to=payload.get("from"), direction="inbound")
                self._inbound.notify_all()
        began = time.monotonic()
        try:
            script = self._answer_fn(payload) if self._answer_fn else default_answer(self, payload)
        finally:
            self._note_slow_answer(uuid, time.monotonic() - began)
        ncco = self._issue(to_json(script), uuid)  # one-use socket tokens, tied to this call
        if uuid:
            self._served(uuid, ncco, "answer_url")
        return ncco

    def _event_webhook(self, payload: dict[str, Any]) -> list[dict[str, Any]] | None:
        self._note_region(payload)
        for fn in list(self._event_fns):
            result = fn(payload)
            if result is not None:
                ncco = self._issue(to_json(result), payload.get("uuid"))
                if payload.get("uuid"):
                    self._served(payload["uuid"], ncco, "event_url")
                return ncco
        return None

    @property
    def answer_timeout(self) -> float:
        """Seconds Vonage waits for the answer webhook (the application's answer socket_timeout): an answer
        handler slower than this gets a warning line. The sandbox's own setting in sandbox mode, else Vonage's
        default (`ANSWER_SOCKET_TIMEOUT`); assign it when your application's timeout is shorter."""
        given = getattr(self, "_answer_timeout", None)
        if given is not None:
            return given
        settings = getattr(self.sandbox, "_settings", None) if self.sandbox is not None else None
        return float(getattr(settings, "answer_timeout", None) or ANSWER_SOCKET_TIMEOUT)

    @answer_timeout.setter
    def answer_timeout(self, seconds: float) -> None:
        self._answer_timeout = float(seconds)

    def _note_slow_answer(self, uuid: str | None, took: float) -> None:
        """One event line when the user's answer handler outran Vonage's wait for the answer webhook."""
        limit = self.answer_timeout
        if took <= limit:
            return
        self.events.add("lab", {
            "uuid": uuid, "status": "answer-handler-slow", "seconds": round(took, 2), "timeout": limit,
            "reason": f"the answer handler took {took:.1f} s; Vonage waits {limit:g} s for the answer webhook (the "
                      "application's answer socket_timeout), then retries it and goes to the fallback answer URL, "
                      "so this call script probably never ran. Return the NCCO sooner: do slow work in a thread, "
                      "or after the call is answered."})

    def _issue(self, ncco: list[dict[str, Any]], uuid: str | None) -> list[dict[str, Any]]:
        """Socket tokens for a script a webhook hands out, unless the request could not be checked: live mode
        without a signature secret gives none (counted, one line per window) unless LABKIT_UNSIGNED_SOCKETS."""
        from labkit.server.socket_links import is_lab_socket

        trusted = self.mode != "live" or bool(self._signature_secret) or self.settings.unsigned_sockets
        if not trusted and any(isinstance(e, dict) and is_lab_socket(e.get("uri"))
                               for action in ncco if isinstance(action, dict)
                               for e in (action.get("endpoint") or [])):
            refusals = getattr(getattr(self, "_ctx", None), "refusals", None)
            if refusals is not None:
                refusals.count("socket-token-withheld", "an unsigned webhook got a call script whose socket links "
                               "carry no token (no VONAGE_SIGNATURE_SECRET; LABKIT_UNSIGNED_SOCKETS=1 allows it)")
        return self.sockets.issue(ncco, uuid, tokens=trusted)

    def _served(self, uuid: str, ncco: list[dict[str, Any]], via: str) -> None:
        """Note an NCCO the platform got for leg `uuid`, so `call.timeline()` can draw its actions."""
        from labkit.lab.ncco_timing import SERVED

        self.events.add("lab", {"uuid": uuid, "status": SERVED, "via": via, "ncco": ncco})

    def wait_for_call(self, timeout: float = 30.0) -> Call:
        """Wait for the next inbound call and return it: one not handed out yet, and not already over when
        the wait began (a call a panel took and hung up, or an old test's, is history: see `lab.calls`)."""
        from labkit.waits import waiting

        with waiting(f"an inbound call to {self.number}", timeout):
            return self._wait_for_call(timeout)

    async def next_call(self, timeout: float = 30.0) -> Call:
        """`await lab.next_call()`: `wait_for_call` that lets the notebook's widgets keep working."""
        import asyncio

        return await asyncio.to_thread(self.wait_for_call, timeout)

    def _wait_for_call(self, timeout: float) -> Call:
        deadline = time.monotonic() + timeout
        with self._inbound:
            over = {uuid for uuid, call in self.calls.items() if call.ended}  # history: in lab.calls, not next
            while True:
                for call in self.calls.values():
                    if call.direction == "inbound" and call.uuid not in self._claimed and call.uuid not in over:
                        self._claimed.add(call.uuid)
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(f"No inbound call reached the lab within {timeout:g} s. Call "
                                      f"{self.number} (in sandbox mode: lab.sandbox.dial(...)).")
                self._inbound.wait(remaining)
