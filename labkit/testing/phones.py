"""A virtual phone for tests: the person who calls the app, or whom the app calls.

    caller = phone("447700900001", answer_after=0)     # behaviour: answer_after, outcome, hangup_after, machine
    call = caller.dial()                               # an inbound call to the application's number
    call.wait_for("answered"); caller.press("1"); caller.say("yes please")
    incoming = phone("447700900002").wait_for_call()   # a call the app placed to this phone

Built on the control API client (`labkit.sandbox.connect`), so it drives a sandbox in its own process or
in this one the same way; its waits are long polls the sandbox answers when the phone changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.testing.calls import DEFAULT_TIMEOUT, Call, CallTimeout

if TYPE_CHECKING:  # pragma: no cover
    from labkit.media.recording import Recording
    from labkit.sandbox.control.client import RemotePhone, RemoteSandbox

__all__ = ["Phone"]

BEHAVIOUR = ("answer_after", "outcome", "hangup_after", "machine")


class Phone:
    """One virtual phone: `dial()`, `press()`, `say()`, `hangup()`, waits, and what it heard."""

    def __init__(self, remote: RemoteSandbox, number: str, **behaviour: Any) -> None:
        unknown = set(behaviour) - set(BEHAVIOUR)
        if unknown:
            raise TypeError(f"phone() takes {', '.join(BEHAVIOUR)}; not {', '.join(sorted(unknown))}")
        self._sb = remote
        self.remote: RemotePhone = remote.phone(number)
        self.number = self.remote.number
        self._seen_calls = len(self.remote.calls)
        if behaviour:
            self.set(**behaviour)

    def set(self, **behaviour: Any) -> Phone:
        """How the phone behaves when called: answer_after (s), outcome (answer, busy, reject,
        unanswered, fail, manual), hangup_after (s after answer, or None), machine (an answering machine)."""
        self.remote.set(**behaviour)
        return self

    # ------------------------------------------------------------------ calls

    def dial(self, to: str | None = None) -> Call:
        """Call `to` (default: the application's number): the app's answer_url is fetched, its NCCO runs."""
        view = self._sb.dial(self.number, to)
        self._seen_calls += 1
        return Call(self._sb, view["uuid"], self)

    def wait_for_call(self, timeout: float = DEFAULT_TIMEOUT) -> Call:
        """Block until a new call reaches this phone (one the app placed), and return it."""
        view = self.remote.wait(timeout, calls=self._seen_calls)
        if len(view["calls"]) <= self._seen_calls:
            raise CallTimeout(f"no call reached {self.number} within {timeout:g} s "
                              f"(it has been in {len(view['calls'])} calls this test)")
        self._seen_calls = len(view["calls"])
        return Call(self._sb, view["calls"][-1], self)

    @property
    def call(self) -> Call | None:
        """The call the phone is in (or ringing for), if any."""
        uuid = self.remote.call
        return Call(self._sb, uuid, self) if uuid else None

    @property
    def calls(self) -> list[Call]:
        """Every call this phone was in since the sandbox was last reset, oldest first."""
        return [Call(self._sb, uuid, self) for uuid in self.remote.calls]

    def wait_for(self, state: str, timeout: float = DEFAULT_TIMEOUT) -> Phone:
        """Block until the phone is idle, ringing or answered."""
        if not self.remote.wait_for_state(state, timeout):
            raise CallTimeout(f"{self.number} was {self.remote.state}, not {state}, after {timeout:g} s")
        return self

    # ------------------------------------------------------------------ the person

    def answer(self) -> None:
        """Pick up a ringing call (for outcome='manual')."""
        self.remote.answer()

    def reject(self) -> None:
        self.remote.reject()

    def hangup(self) -> None:
        """Put the phone down: the call ends, and the app's event_url hears `completed`."""
        self.remote.hangup()

    def press(self, digits: str, duration_ms: int | None = None) -> None:
        """Press keys (0-9 * # A-D), one every 0.3 s of call time: the app's input action gets them."""
        self.remote.press(digits, duration_ms)

    def say(self, source: Any = None, *, text: str | None = None) -> float:
        """Speak into the call: `say(text="yes")` (synthesized, and the transcript for speech input) or a
        WAV/MP3 path or bytes. Returns the seconds of speech queued; `said_at` then says when it starts."""
        if isinstance(source, str) and text is None and not source.lower().endswith((".wav", ".mp3")):
            return self.remote.say(text=source)
        return self.remote.say(source, text=text)

    @property
    def said_at(self) -> float | None:
        """The call second (as `call.time` and `call.heard` count) the last `say()` starts at, after speech
        queued before it; None outside an answered call. Measure a reply's latency from here: `call.time`
        read before `say()` also counts the request itself (at speed 5, 0.1-0.4 s of call time on a busy
        machine)."""
        return self.remote.said_at

    @property
    def heard(self) -> Recording:
        """Everything the phone heard since the sandbox was last reset (16 kHz)."""
        return self.remote.heard

    @property
    def received_dtmf(self) -> str:
        """Digits the app sent to this phone's call with `send_dtmf`."""
        return str(self.remote.received_dtmf)

    def __repr__(self) -> str:
        return f"<Phone {self.number}>"
