"""A call under test: one sandbox call leg seen from a virtual phone, with waits that block on the sandbox
(long polls of its control API, never a sleep loop) and what a test asks about it.

Every read goes to the sandbox (its process or the one in this process) through the control API, so the
same object works whichever way the sandbox runs. The assertions are in assertions.py; the methods here
named `assert_*` hand over to them so a test reads `call.assert_heard_text("Welcome")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.media.recording import Recording

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.control.client import RemoteSandbox
    from labkit.testing.phones import Phone

__all__ = ["Call", "CallTimeout"]

DEFAULT_TIMEOUT = 30.0  # real seconds a wait may take before it fails with what the call did instead


class CallTimeout(AssertionError):
    """A wait ran out: the message says what the call did meanwhile (its statuses, errors, webhooks)."""


class Call:
    """A sandbox call leg between a virtual phone and the app (`uuid`, `status`, `heard`, `played`, ...)."""

    def __init__(self, remote: RemoteSandbox, uuid: str, phone: Phone | None = None) -> None:
        self._remote = remote
        self.uuid = uuid
        self.phone = phone
        self._view: dict | None = None

    # ------------------------------------------------------------------ state

    def view(self, refresh: bool = True) -> dict:
        """The control API's view of the call (GET /_labkit/calls/{uuid}): status, NCCO, webhooks, played."""
        if refresh or self._view is None:
            self._view = self._remote.call(self.uuid)
        return self._view

    @property
    def status(self) -> str:
        return str(self.view()["status"])

    @property
    def statuses(self) -> list[str]:
        """Every status the app was told of, in order (from the event webhooks sent)."""
        return [w["payload"]["status"] for w in self.view()["webhooks"]
                if w["kind"] == "event" and "status" in w["payload"]]

    @property
    def ended_by(self) -> str | None:
        """Who ended the call: 'phone' (the caller hung up), 'app' (REST hangup or its WebSocket closed),
        'ncco' (the app's NCCO ran out of actions), 'platform' (a timeout, an error); None while live."""
        return self.view()["ended_by"]

    @property
    def errors(self) -> list[str]:
        """Why the sandbox refused what the app asked (an invalid NCCO, a stream it could not fetch)."""
        return list(self.view()["errors"])

    @property
    def webhooks(self) -> list[dict]:
        """Each webhook exchange of this call: kind, url, method, payload, and the app's answer."""
        return list(self.view()["webhooks"])

    @property
    def ncco(self) -> list[dict] | None:
        """The NCCO running (or last run), as the sandbox validated it."""
        return self.view()["ncco"]["actions"]

    @property
    def answer_ncco(self) -> Any:
        """What the app's answer_url returned (the body of its answer), or None when it was not called."""
        for hook in self.view()["webhooks"]:
            if hook["kind"] == "answer" and hook["answer"] is not None:
                return hook["answer"]["body"]
        return None

    @property
    def played(self) -> list[dict]:
        """What the sandbox played to the caller: talk texts, stream URLs and DTMF, each with `at` (call
        seconds after answer), `seconds` and `by` (ncco or rest)."""
        return list(self.view()["played"])

    @property
    def spoken(self) -> list[tuple[float, str]]:
        """(at, text) of each talk the sandbox spoke to the caller, in order."""
        return [(item["at"], item["text"]) for item in self.played if item["kind"] == "talk"]

    @property
    def heard(self) -> Recording:
        """What the phone heard in this call (16 kHz; starts when the call was answered)."""
        if self.phone is None:
            raise AttributeError("this call has no virtual phone, so nothing heard it")
        return self.phone.remote.heard_in(self.uuid)

    # ------------------------------------------------------------------ waits

    def wait_for(self, status: str, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Block until the call went through `status` (ringing, answered, completed, ...)."""
        view = self._remote.call(self.uuid, until=status, timeout=timeout)
        self._view = view
        seen = [w["payload"].get("status") for w in view["webhooks"] if w["payload"].get("status")]
        if view["status"] != status and status not in seen:
            raise CallTimeout(f"call {self.uuid[:8]} did not reach {status!r} within {timeout:g} s: "
                              f"{self._story(view)}")
        return self

    def wait_for_action(self, action: str, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Block until the app's NCCO runs `action` now ("input": once it listens, so `press` counts)."""
        view = self._remote.call(self.uuid, until=f"action:{action}", timeout=timeout)
        self._view = view
        ncco = view["ncco"]
        actions, step = ncco.get("actions") or [], ncco.get("current")
        if view.get("ended_by") is not None or step is None or step >= len(actions) \
                or actions[step].get("action") != action:
            raise CallTimeout(f"call {self.uuid[:8]} did not run a {action!r} action within {timeout:g} s: "
                              f"{self._story(view)}")
        return self

    def wait_for_played(self, kind: str = "stream", timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Block until the sandbox played a `kind` (talk, stream, dtmf) to the caller to its end (or the
        call ended): e.g. the music the app streamed over REST is over."""
        view = self._remote.call(self.uuid, until=f"played:{kind}", timeout=timeout)
        self._view = view
        if not any(item["kind"] == kind for item in view["played"]):
            raise CallTimeout(f"call {self.uuid[:8]}: no {kind} was played within {timeout:g} s: "
                              f"{self._story(view)}")
        return self

    def wait_seconds(self, seconds: float, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Let `seconds` of call time pass (the sandbox's clock, so `speed` applies): e.g. for the echo of
        what the caller said. Returns early if the call ends."""
        target = max(0.0, self.view()["time"]) + seconds
        self._view = self._remote.call(self.uuid, until=f"time:{target:.3f}", timeout=timeout)
        return self

    @property
    def time(self) -> float:
        """Call seconds since answer (-1 before): where in `heard` the caller is now."""
        return float(self.view()["time"])

    @property
    def children(self) -> list[Call]:
        """The legs this call connected to (a `connect` to a phone, a WebSocket, ...)."""
        return [Call(self._remote, uuid) for uuid in self.view()["children"]]

    def wait_until_hung_up(self, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Block until the call ended (by anyone) and its last webhook was answered."""
        view = self._remote.call(self.uuid, until="finished", timeout=timeout)
        self._view = view
        if not view.get("finished"):
            raise CallTimeout(f"call {self.uuid[:8]} was still up after {timeout:g} s: {self._story(view)}")
        return self

    def hangup(self) -> Call:
        """The caller hangs up (the phone puts the receiver down)."""
        if self.phone is None:
            raise AttributeError("this call has no virtual phone to hang up")
        self.phone.hangup()
        return self

    def _story(self, view: dict) -> str:
        from labkit.testing.report import describe_call

        return describe_call(view)

    # ------------------------------------------------------------------ assertions (assertions.py)

    def assert_heard_audio(self, reference: str | Path | Any, **kw: Any) -> float:
        from labkit.testing.assertions import assert_heard_audio

        return assert_heard_audio(self, reference, **kw)

    def assert_heard_text(self, text: str, **kw: Any) -> dict:
        from labkit.testing.assertions import assert_heard_text

        return assert_heard_text(self, text, **kw)

    def assert_heard_dtmf(self, digits: str, **kw: Any) -> str:
        from labkit.testing.assertions import assert_heard_dtmf

        return assert_heard_dtmf(self, digits, **kw)

    def assert_silent(self, start: float, end: float, **kw: Any) -> None:
        from labkit.testing.assertions import assert_silent

        assert_silent(self, start, end, **kw)

    def assert_ended(self, status: str = "completed", *, by: str | None = None) -> None:
        from labkit.testing.assertions import assert_ended

        assert_ended(self, status, by=by)

    def assert_webhook(self, kind: str = "event", **payload: Any) -> dict:
        from labkit.testing.assertions import assert_webhook

        return assert_webhook(self, kind, **payload)

    def __repr__(self) -> str:
        status = self._view["status"] if self._view else "?"
        return f"<Call {self.uuid[:8]} {status}>"
