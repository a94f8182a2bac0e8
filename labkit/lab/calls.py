"""`Call`: one call leg, controlled through the real vonage SDK, watched through the event log."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from labkit import validate
from labkit.errors import (
    AuthenticationError,
    CallEndedError,
    CallError,
    CallNotAnsweredError,
    LabkitError,
)
from labkit.events import FINAL_STATUSES, Event, EventLog
from labkit.lab.delivery import current_status

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.facade import Lab


@contextlib.contextmanager
def api_errors(action: str, uuid: str | None = None, host: str | None = None) -> Iterator[None]:
    """Re-raise SDK and HTTP errors as labkit errors that say what happened and what to do. `host`: where
    the request went, named in a 404, since a call controlled outside its region is "not found" there too."""
    import requests
    from vonage_http_client import errors as http_errors

    call = f"call {uuid}" if uuid else "the call"
    try:
        yield
    except http_errors.AuthenticationError as exc:
        raise AuthenticationError(
            f"{action} failed: the Voice API refused the credentials (401). Check VONAGE_APPLICATION_ID and "
            "that VONAGE_PRIVATE_KEY is that application's key (`labkit doctor` checks both).",
            status=401, body=_body(exc)) from None
    except http_errors.NotFoundError as exc:
        where = f" at {host}" if host else ""
        if uuid is None:  # not about a call: the host has no such API path
            raise CallError(f"{action} failed: the Voice API{where} answered 404 (Not Found). Is VONAGE_API_HOST "
                            "a Vonage-compatible host?", status=404, body=_body(exc)) from None
        raise CallEndedError(
            f"{action} failed: {call} is unknown or already over{where} (404; Vonage also answers 404 to a request "
            "sent to another region than the call's). Place a new call with lab.call(...).",
            status=404, body=_body(exc)) from None
    except http_errors.HttpRequestError as exc:
        status = exc.response.status_code
        body = _body(exc)
        if status == 400 and uuid is not None and says_not_answered(body):
            raise CallNotAnsweredError(
                f"{action} failed: {call} is not answered yet (400). Wait for it first: "
                "call.wait_for('answered').", status=400, body=body) from None
        detail = _problem_detail(body)
        raise CallError(f"{action} failed: the Voice API answered {status}{detail}.", status=status,
                        body=body) from None
    except requests.Timeout:
        raise CallError(f"{action} failed: the Voice API did not answer in time. Is the network up? "
                        "(In sandbox mode: is the sandbox running? lab.sandbox)") from None
    except requests.ConnectionError as exc:
        raise CallError(f"{action} failed: could not reach the Voice API ({type(exc).__name__}).") from None


NOT_ANSWERED_WORDS = ("not answered", "not active", "not yet", "not established")


def says_not_answered(body: Any) -> bool:
    """Does a 400 say the call is not answered (established) yet, rather than that the request was bad?

    Vonage's documented body for controlling a call too soon is `{"type":"BAD_REQUEST","error_title":
    "Bad Request"}` [SUP-BADREQ, RUBY-ISS116], also worded "call is not active" [PHP-ISS103]
    (vonage-platform.md section 7). A 400 naming `invalid_parameters` is a bad request, never this.
    """
    if not isinstance(body, dict):
        return isinstance(body, str) and any(w in body.lower() for w in NOT_ANSWERED_WORDS)
    if body.get("invalid_parameters"):
        return False
    if body.get("type") == "BAD_REQUEST" and body.get("error_title"):
        return True
    text = " ".join(str(body.get(k) or "") for k in ("title", "detail", "error_title", "message")).lower()
    return any(w in text for w in NOT_ANSWERED_WORDS)


def _body(exc) -> Any:
    try:
        return exc.response.json()
    except Exception:  # noqa: BLE001
        return getattr(exc.response, "text", None)


def _problem_detail(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get("title") or ""), str(body.get("detail") or "")]
    for p in body.get("invalid_parameters") or []:
        parts.append(f"{p.get('name')}: {p.get('reason')}")
    text = "; ".join(x for x in parts if x)
    return f" ({text})" if text else ""


def hang_up_calls(calls: list[Call], errors: list[Exception], wait: float = 3.0) -> list[str]:
    """Hang up each call not over yet (each at its own region's host); wait up to `wait` s for their
    `completed` events. Lines saying how many, for `lab.stop()`'s message. A call that is already over
    (404) is not counted; another refusal goes to `errors` and is named."""
    import time

    hung: list[Call] = []
    lines: list[str] = []
    for call in calls:
        if call.ended:
            continue
        try:
            call.hangup()
            hung.append(call)
        except CallEndedError:
            continue
        except LabkitError as exc:
            lines.append(f"could not hang up call {call.uuid}: {exc}")
            errors.append(exc)
    deadline = time.monotonic() + wait
    while hung and any(not c.ended for c in hung) and time.monotonic() < deadline:
        time.sleep(0.05)
    if hung:
        lines.insert(0, f"hung up {len(hung)} call{'s' if len(hung) != 1 else ''} still up "
                        f"({', '.join(c.uuid[:8] for c in hung)}), so that none outlives the lab")
    return lines


class Reply:
    """The Voice API's answer to a request about a call, shown as one line of words in a notebook
    (not the SDK's `CallMessage(...)`); its fields (`.message`, `.uuid`) and `.raw` are still there."""

    def __init__(self, action: str, raw: Any):
        self.action = action
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        if name == "raw":
            raise AttributeError(name)
        return getattr(self.raw, name)

    def __repr__(self) -> str:
        message = getattr(self.raw, "message", None) or "done"
        return f"{self.action}: {message}"


class Call:
    """A call leg the lab placed or received. Methods map one to one onto the Voice API."""

    def __init__(self, lab: Lab, uuid: str, *, conversation_uuid: str | None = None,
                 to: str | None = None, direction: str = "outbound"):
        self.lab = lab
        self.uuid = uuid
        self.conversation_uuid = conversation_uuid
        self.to = to
        self.direction = direction
        self._started_seq = 0

    # -- where the call is controlled ----------------------------------------------------------
    @property
    def region_url(self) -> str | None:
        """The regional Voice API host this call is controlled at (from its answer webhook's `region_url`),
        or None: then the lab's own host (VONAGE_API_HOST, or Vonage's default)."""
        return self.lab.region_of(self.uuid)

    @property
    def _voice(self) -> Any:
        """The Voice client for this call's region: same credentials, the call's host (labkit.lab.regions)."""
        return self.lab.voice_for(self.uuid)

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return api_errors(action, self.uuid, self._voice.http_client.api_host)

    # -- watching ----------------------------------------------------------------------------
    @property
    def events(self) -> EventLog:
        """Everything the webhooks received about this call, as a table."""
        return self.lab.events.for_call(self.uuid, self.conversation_uuid)

    @property
    def status(self) -> str | None:
        """Decided by the statuses and their timestamps, not arrival order: a final one is final."""
        return current_status(self.lab.events.filter(self.uuid, kind="event"))

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    def wait_for(self, status: str, timeout: float = 30.0) -> Event:
        """Wait until the event webhook reports `status` for this call (already-received events count)."""
        from labkit.waits import waiting

        with waiting(f"'{status}' on call {self.uuid[:8]}", timeout):
            return self.lab.events.wait_for(status, uuid=self.uuid, conversation_uuid=self.conversation_uuid,
                                            timeout=timeout)

    async def until(self, status: str, timeout: float = 30.0) -> Event:
        """`await call.until("answered")`: `wait_for` that lets the notebook's widgets keep working.

        The blocking wait runs on a worker thread while the kernel's event loop goes on handling
        button clicks (ipykernel 7 serves widget messages during an awaiting cell).
        """
        import asyncio

        return await asyncio.to_thread(self.wait_for, status, timeout)

    def info(self):
        """The platform's view of the call (`vonage_voice.CallInfo`)."""
        with self._errors("Getting the call's details"):
            return self._voice.get_call(self.uuid)

    # -- audio -------------------------------------------------------------------------------
    def stream(self, file_or_url: str, loop: int = 1, level: float = 0, *, check: bool = True):
        """Play an audio file (a bare name is served by the lab) into the call over REST.

        loop=0 repeats until `stop_stream()`; level goes from -1 to 1 (0 is normal). A URL is fetched
        once first (`check=False` skips that), since a stream the platform cannot fetch plays silence
        with no event; the refusal also shows in the event log.
        """
        from vonage_voice import AudioStreamOptions

        if not isinstance(file_or_url, str):
            raise validate.InvalidInput(
                "stream() takes one file name or URL (Vonage plays one URL per stream), "
                f"not {type(file_or_url).__name__}.")
        url = self.lab.audio_url(file_or_url)
        if check and url == file_or_url:  # a URL of the user's, not a file the lab serves
            from labkit.live.reach import check_audio_url

            try:
                check_audio_url(url, live=self.lab.mode == "live")
            except LabkitError as exc:
                self.lab.events.add("lab", {"uuid": self.uuid, "status": "stream-refused", "file": url,
                                            "reason": str(exc)})
                raise
        options = AudioStreamOptions(stream_url=[url], loop=validate.loop(loop), level=validate.level(level))
        with self._errors("Starting the stream"):
            result = self._voice.play_audio_into_call(self.uuid, options)
        self.lab.events.add("lab", {"uuid": self.uuid, "status": "stream-started", "file": file_or_url,
                                    "loop": loop, "level": level})
        return Reply(f"Streaming {file_or_url} into call {self.uuid[:8]}", result)

    def stop_stream(self):
        with self._errors("Stopping the stream"):
            result = self._voice.stop_audio_stream(self.uuid)
        self.lab.events.add("lab", {"uuid": self.uuid, "status": "stream-stopped"})
        return Reply(f"Stopping the stream in call {self.uuid[:8]}", result)

    def say(self, text: str, *, language: str = "en-US", style: int = 0, premium: bool = False,
            loop: int = 1, level: float = 0):
        """Speak text into the call (text-to-speech over REST)."""
        from vonage_voice import TtsStreamOptions

        text = validate.talk_text(text, "say()")  # refused before sending: Vonage speaks at most 1500 characters
        options = TtsStreamOptions(text=text, language=validate.language(language), style=validate.style(style),
                                   premium=bool(premium), loop=validate.loop(loop), level=validate.level(level))
        with self._errors("Speaking into the call"):
            result = self._voice.play_tts_into_call(self.uuid, options)
        self.lab.events.add("lab", {"uuid": self.uuid, "status": "talk-started", "text": str(text), "loop": loop})
        return Reply(f"Speaking into call {self.uuid[:8]}", result)

    def stop_talk(self):
        with self._errors("Stopping the speech"):
            result = self._voice.stop_tts(self.uuid)
        self.lab.events.add("lab", {"uuid": self.uuid, "status": "talk-stopped"})
        return Reply(f"Stopping the speech in call {self.uuid[:8]}", result)

    def dtmf(self, digits: str):
        """Send key presses into the call (0-9, *, #, and p for a 500 ms pause)."""
        digits = validate.dtmf(digits)
        with self._errors("Sending DTMF"):
            result = self._voice.play_dtmf_into_call(self.uuid, digits)
        return Reply(f"Sending keys {digits} into call {self.uuid[:8]}", result)

    # -- call control ------------------------------------------------------------------------
    def hangup(self) -> None:
        with self._errors("Hanging up"):
            self._voice.hangup(self.uuid)

    def mute(self) -> None:
        with self._errors("Muting"):
            self._voice.mute(self.uuid)

    def unmute(self) -> None:
        with self._errors("Unmuting"):
            self._voice.unmute(self.uuid)

    def earmuff(self) -> None:
        with self._errors("Earmuffing"):
            self._voice.earmuff(self.uuid)

    def unearmuff(self) -> None:
        with self._errors("Un-earmuffing"):
            self._voice.unearmuff(self.uuid)

    def transfer(self, ncco_or_url) -> None:
        """Replace the call's script: with an NCCO (models or dicts), or an answer URL to fetch one from."""
        if isinstance(ncco_or_url, str):
            url = validate.public_url(ncco_or_url, "transfer answer URL")
            with self._errors("Transferring the call"):
                self._voice.transfer_call_answer_url(self.uuid, url)
            return
        from labkit.lab.ncco import to_json

        with self._errors("Transferring the call"):
            # The SDK's typed method wants models; dicts (raw NCCO JSON) go on the wire as they are.
            http = self._voice.http_client
            script = to_json(ncco_or_url)
            http.put(http.api_host, f"/v1/calls/{self.uuid}",
                     {"action": "transfer", "destination": {"type": "ncco", "ncco": script}})
        self.lab._served(self.uuid, script, "transfer")

    def recording(self, timeout: float = 10.0):
        """The recording of this call's WebSocket audio, once the socket has closed (after hang-up)."""
        from labkit.errors import WaitTimeout

        session = self.lab.socket(self, timeout=timeout)
        if not session.closed.wait(timeout):
            raise WaitTimeout(f"The WebSocket of call {self.uuid} is still open after {timeout:g} s: hang up "
                              "first (call.hangup()), or use lab.socket(call).recording() for the audio so far.")
        return session.recording()

    # -- display -----------------------------------------------------------------------------
    def timeline(self, ax=None):
        """The call's events, streams and talks on one time axis (matplotlib figure)."""
        from labkit.lab.timeline import call_timeline

        return call_timeline(self.events, ax=ax, audio_path=self.lab.audio_path)

    def __repr__(self) -> str:
        """A sentence, as a notebook prints it (`lab.calls`, a list of calls)."""
        way = "to" if self.direction == "outbound" else "from"
        return f"{self.direction} call {self.uuid[:8]} {way} {self.to or '?'}: {self.status or 'placed'}"

    def _repr_html_(self) -> str:
        return (f"<b>Call</b> {html.escape(self.uuid)} to {html.escape(str(self.to))}: "
                f"<code>{html.escape(str(self.status))}</code>" + self.events._repr_html_())
