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

__all__ = ["LabWebhooks"]


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
        script = self._answer_fn(payload) if self._answer_fn else default_answer(self, payload)
        ncco = self.sockets.issue(to_json(script), uuid)  # one-use socket tokens, tied to this call
        if uuid:
            self._served(uuid, ncco, "answer_url")
        return ncco

    def _event_webhook(self, payload: dict[str, Any]) -> list[dict[str, Any]] | None:
        self._note_region(payload)
        for fn in list(self._event_fns):
            result = fn(payload)
            if result is not None:
                ncco = self.sockets.issue(to_json(result), payload.get("uuid"))
                if payload.get("uuid"):
                    self._served(payload["uuid"], ncco, "event_url")
                return ncco
        return None

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
