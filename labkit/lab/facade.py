"""The Lab facade: starts the webhook server, the sandbox or the tunnel, and the SDK client, once.

`Lab.start()` is idempotent across cell re-runs and `importlib.reload`: the running lab hangs off a
named daemon thread, which survives both (module globals do not survive a reload).

Split by what each part holds: this module is the facade (start/stop, addresses, calls, sockets);
labkit.lab.startup the start-up of each mode (`LabStartup`); labkit.lab.webhooks the answer and event
webhooks' handling and inbound calls (`LabWebhooks`); labkit.lab.display the sandbox's phones, the
timeline, the panel and how a lab shows itself (`LabDisplay`); labkit.lab.regions where each call is
controlled (`LabRegions`); labkit.lab.downloads a `record` action's file (`LabDownloads`). All are mixed
into `Lab`.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from labkit import validate
from labkit.config import Settings, audio_dirs, bound, state_dir
from labkit.errors import (
    AudioError,
    InvalidInput,
    LabkitError,
    plain,
)
from labkit.events import DEFAULT_TEXT_LIMIT, DEFAULT_WINDOW, EventLog
from labkit.lab.calls import Call, api_errors, hang_up_calls
from labkit.lab.delivery import OncePerDelivery
from labkit.lab.display import LabDisplay
from labkit.lab.downloads import LabDownloads
from labkit.lab.ncco import to_json
from labkit.lab.regions import LabRegions
from labkit.lab.startup import REGISTRY_THREAD, LabStartup
from labkit.lab.webhooks import LabWebhooks

DEFAULT_LENGTH_TIMER = 900  # seconds: a lab call that nobody hangs up ends after 15 minutes


def running_lab() -> Lab | None:
    """The lab started earlier in this process, if it is still running."""
    for thread in threading.enumerate():
        if thread.name == REGISTRY_THREAD and thread.is_alive():
            lab = getattr(thread, "lab", None)
            if lab is not None and not lab.stopped:
                return lab
    return None


class Lab(LabStartup, LabWebhooks, LabRegions, LabDownloads, LabDisplay):
    """One running lab: server + (sandbox | tunnel) + SDK client + event log + recordings."""

    def __init__(self, settings: Settings, *, port: int | None = None, speed: float | None = None,
                 quiet: bool = False, take_number: bool | None = None):
        self.settings = settings
        self.mode = settings.mode
        self.events = EventLog(window=bound("LABKIT_EVENT_WINDOW", DEFAULT_WINDOW),
                               text_limit=bound("LABKIT_EVENT_TEXT_LIMIT", DEFAULT_TEXT_LIMIT, low=16),
                               journal=state_dir() / "events" / f"{time.strftime('%Y-%m-%d-%H%M%S')}-"
                                                                f"{os.getpid()}-{secrets.token_hex(2)}.jsonl")
        self.calls: dict[str, Call] = {}  # added under _inbound: wait_for_call walks it on next_call's thread
        self.stopped = False
        self._answer_fn: Callable[[dict], Any] | None = None
        self._event_fns: list[Callable[[dict], Any]] = []
        self._inbound = threading.Condition()
        self._claimed: set[str] = set()  # inbound calls wait_for_call handed out
        self._requested_port = settings.port if port is None else port
        self._speed = settings.sandbox_speed if speed is None else speed
        self._quiet = quiet
        self.audio_dirs: list[Path] = audio_dirs()
        self.sandbox = None
        self.tunnel = None
        self.runner = None
        self.sockets = None
        self.browser_audio = None  # labkit.server.browser_audio.BrowserAudioHub: the panel's direct audio
        self._voice = None
        self.number: str | None = None
        self.public_url: str = ""
        self._signature_secret: str | None = None
        self._keeper: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._parts_stopped: set[str] = set()
        self._senders: set[str] = set()  # numbers the lab has called from (see _on_answer_webhook)
        self._account_note: str | None = None  # live: what the lab changed on the application, or what to paste
        self._account_restore: Callable[[], list[str]] | None = None  # live: puts back what the lab changed
        self._take_number = settings.take_number if take_number is None else bool(take_number)
        self.stop_note: str = ""  # what stop() did to the account and the calls (printed unless quiet)
        self._once = OncePerDelivery()  # a webhook delivered twice runs the handlers once
        self._regions: dict[str, str] = {}  # call uuid -> the regional host its webhooks named (labkit.lab.regions)
        self._regional: dict[str, Any] = {}  # regional host -> its Voice client

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def start(cls, mode: str | None = None, *, port: int | None = None, speed: float | None = None,
              env_file: str | os.PathLike | None = None, quiet: bool = False,
              take_number: bool | None = None) -> Lab:
        """Start the lab, or return the one already running (re-running a cell is safe).

        mode: "sandbox" or "live" overrides LABKIT_MODE; speed: sandbox clock factor (tests use >1).
        take_number: live mode, True lets the lab move VONAGE_NUMBER from another application of yours (or
        clear its SIP/phone forwarding) for the session, and lab.stop() puts it back; without it (or
        LABKIT_TAKE_NUMBER=1) the lab leaves such a number alone and says which application has it.
        """
        # Check every argument before touching a running lab: a typo must not end the calls in progress.
        if mode is not None and mode not in ("sandbox", "live", "auto"):
            raise InvalidInput(f"mode must be 'sandbox', 'live' or 'auto', not {mode!r}.")
        if port is not None:
            validate.port(port)
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not 0 < speed <= 1000):
            raise InvalidInput(f"speed is the sandbox clock's factor, a number above 0 (1 is real time, tests "
                               f"use 10), not {speed!r}.")
        if take_number is not None and not isinstance(take_number, bool):
            raise InvalidInput(f"take_number is True (the lab may move VONAGE_NUMBER for the session) or False, "
                               f"not {take_number!r}.")
        existing = running_lab()
        if existing is not None:
            wanted = mode or existing.settings.requested_mode
            same_consent = take_number is None or bool(take_number) == existing._take_number
            if wanted in ("auto", existing.mode) and (speed is None or speed == existing._speed) and same_consent:
                return existing
            existing.stop()  # asked for something different: restart rather than return a wrong lab
        settings = Settings.load(env_file)
        if mode is not None:
            settings = _replace(settings, requested_mode=mode)
        lab = cls(settings, port=port, speed=speed, quiet=quiet, take_number=take_number)
        try:
            lab._start()
        except BaseException:
            lab.stop()
            raise
        return lab

    def stop(self) -> None:
        """Close WebSockets, stop the server (freeing its port), the sandbox and the tunnel. Idempotent.

        Safe to interrupt (a second Ctrl-C in a notebook): a part counts as stopped only once its stop
        returned, and `stopped` is set only when all have, so calling stop() again finishes the work.
        """
        if self.stopped:
            return
        self._stop_event.set()  # running_lab() no longer hands this lab out
        errors: list[Exception] = []
        notes: list[str] = []
        if self.mode == "live" and "calls" not in self._parts_stopped:
            # Calls still up would outlive the lab (and be billed): hang them up while their webhooks
            # still reach it, before the application is put back and the tunnel closes.
            notes += hang_up_calls(list(self.calls.values()), errors)
            self._parts_stopped.add("calls")
        restore, self._account_restore = self._account_restore, None
        if restore is not None:  # live: put back what the lab changed on the application and the number
            try:
                lines = restore() or ["nothing left to put back"]
                notes.append(f"Vonage application {self.settings.application_id}, at lab.stop():"
                             + "".join(f"\n  - {line}" for line in lines))
            except Exception as exc:  # noqa: BLE001 - the record stays on disk for a later start
                errors.append(LabkitError(
                    f"putting the Vonage application back failed ({plain(exc)}); what the lab changed stays saved "
                    "under LABKIT_HOME/live/, and a lab started in a new kernel puts it back"))
        if notes:
            self.stop_note = "\n".join(notes)
            if not self._quiet:
                print(self.stop_note)
        # The sandbox first: it hangs up its calls and posts their last events while the server listens.
        for name, part in (("sandbox", self.sandbox), ("runner", self.runner), ("tunnel", self.tunnel)):
            if part is None or name in self._parts_stopped:
                continue
            try:
                if name == "tunnel":
                    part.kill()  # the agent too: a stopped lab leaves no process behind
                else:
                    part.stop()
            except Exception as exc:  # noqa: BLE001 - stop everything we can, then report
                errors.append(exc)
            self._parts_stopped.add(name)  # not reached on KeyboardInterrupt: the next stop() retries
            if name == "runner" and part.cut_note and not self._quiet:
                print(part.cut_note)  # stop is bounded: say what it had to cut to stay so
        self.stopped = True
        self.events.close()
        if errors:
            raise LabkitError("The lab stopped, but not cleanly: " + "; ".join(map(str, errors)))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.runner.port if self.runner else 0

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The URL at which the platform reaches `path` on the lab's server."""
        return self.public_url + "/" + path.lstrip("/")

    def socket_url(self, link: str | None = None) -> str:
        """The lab's WebSocket endpoint (ws:// or wss://), with the token that guards it."""
        base = re.sub(r"^http", "ws", self.public_url)
        return self.sockets.url(base, link)

    def add_audio_dir(self, path: str | os.PathLike) -> Path:
        """Serve the audio files in another folder too (bare names are looked up in order)."""
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise AudioError(f"{folder} is not a folder: give the folder that holds your .mp3/.wav files.")
        if folder not in self.audio_dirs:
            self.audio_dirs.insert(0, folder)
        return folder

    def audio_files(self) -> list[str]:
        return self._ctx.audio_names() if self.runner else []

    def audio_path(self, name: str) -> Path:
        path = self._ctx.find_audio(name)
        if path is None:
            raise AudioError(
                f"No audio file {name!r} in the lab's audio folders ({', '.join(map(str, self.audio_dirs))}). "
                f"Available: {', '.join(self.audio_files()) or 'none'}. Add a folder with lab.add_audio_dir(...)."
            )
        return path

    def audio_url(self, name_or_url: str) -> str:
        """A bare file name -> the URL the platform fetches it from; URLs pass through (checked)."""
        if re.match(r"^[a-z]+://", str(name_or_url), re.I):
            return validate.public_url(name_or_url, "audio stream")
        path = self.audio_path(name_or_url)
        from labkit.media.audio import probe

        info = probe(path)  # reads the header only: refuse here what the platform would fail to play
        if path.suffix.lower() not in (".mp3", ".wav") or not info.playable:
            raise AudioError(f"{path.name} cannot be streamed by Vonage ({info.reason or 'not MP3 or WAV'}): "
                             "use an MP3 or a 16-bit PCM WAV, for example `Recording(path).save('x.wav')`.")
        return self.url("/audio/" + quote(name_or_url))

    # -- SDK -----------------------------------------------------------------------------------
    @property
    def voice(self):
        """The real `vonage` SDK's Voice client, pointed at the sandbox or at Vonage."""
        if self._voice is None:
            raise LabkitError("The lab is not running: call Lab.start() first.")
        return self._voice

    # -- calls ---------------------------------------------------------------------------------
    def call(self, to: str | None = None, ncco: Any = None, *, answer_url: str | None = None,
             from_number: str | None = None, length_timer: int | None = DEFAULT_LENGTH_TIMER,
             ringing_timer: int | None = None, event_url: str | None = None) -> Call:
        """Place an outbound call. Without `ncco` or `answer_url` the lab's answer handler gives the
        script (by default: a greeting, then silence that keeps the call open for REST control)."""
        if not (to or self.settings.to_number):
            raise InvalidInput("Who should the lab call? Pass a number, lab.call('447700900001'), or set TO_NUMBER.")
        to = validate.phone_number(to or self.settings.to_number, "number to call")
        sender = validate.phone_number(from_number or self.number or "", "caller number (VONAGE_NUMBER)")
        self._senders.add(sender)
        if ncco is not None and answer_url is not None:
            raise InvalidInput("Give either ncco= or answer_url=, not both.")
        if answer_url is not None:
            validate.public_url(answer_url, "answer URL")
        if event_url is not None:
            validate.public_url(event_url, "event URL")
        body: dict[str, Any] = {
            "to": [{"type": "phone", "number": to}],
            "from": {"type": "phone", "number": sender},
            "event_url": [event_url or self.url("/webhooks/event")],
        }
        script = to_json(ncco) if ncco is not None else None
        if script == []:
            raise InvalidInput("An empty NCCO would end the call as soon as it is answered: give at least one "
                               "action (ncco=[Talk(text='Hello')]), or leave ncco out for the lab's default script.")
        if script is not None:
            issued = self.sockets.issue(script)  # fresh one-use socket tokens; sent as JSON when changed
            ncco, script = (ncco, script) if issued == script else (issued, issued)
            body["ncco"] = script
        else:
            body["answer_url"] = [answer_url or self.url("/webhooks/answer")]
        if length_timer is not None:
            body["length_timer"] = validate.seconds(length_timer, "length_timer", 1, 86400)
        if ringing_timer is not None:
            body["ringing_timer"] = validate.seconds(ringing_timer, "ringing_timer", 1, 120)
        with api_errors("Placing the call", host=self.voice.http_client.api_host):
            response = self._create_call(body, ncco)
        call = Call(self, response.uuid, conversation_uuid=response.conversation_uuid, to=to)
        with self._inbound:  # an insert while wait_for_call iterates would raise there
            self.calls[call.uuid] = call
        if script:
            self.sockets.bind_links(script, call.uuid)
            self._served(call.uuid, script, "create-call")
        return call

    def _create_call(self, body: dict[str, Any], ncco: Any):
        """Through the SDK's typed request when the script is models, as JSON when it holds dicts."""
        from vonage_voice import CreateCallRequest, CreateCallResponse, Phone, ToPhone

        items = [] if ncco is None else ([ncco] if isinstance(ncco, Mapping) or hasattr(ncco, "model_dump")
                                         else list(ncco))
        if all(hasattr(a, "model_dump") for a in items):
            optional = {k: body[k] for k in ("answer_url", "length_timer", "ringing_timer") if k in body}
            if items:
                optional["ncco"] = items
            request = CreateCallRequest(
                to=[ToPhone(number=body["to"][0]["number"])], from_=Phone(number=body["from"]["number"]),
                event_url=body["event_url"], **optional)
            return self.voice.create_call(request)
        http = self.voice.http_client
        return CreateCallResponse(**http.post(http.api_host, "/v1/calls", body))

    @property
    def last_call(self) -> Call | None:
        return next(reversed(self.calls.values()), None) if self.calls else None

    # -- audio over the WebSocket ----------------------------------------------------------------
    def socket(self, call: Call | str, timeout: float = 10.0):
        """The live WebSocket session of a call (waits up to `timeout` s for it to connect)."""
        return self.sockets.session_for(call.uuid if isinstance(call, Call) else call, timeout=timeout)

    @property
    def recordings(self):
        """Every WebSocket recording made by this lab, oldest first."""
        return self.sockets.recordings()



def _replace(settings: Settings, **changes) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)
