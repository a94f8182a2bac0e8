"""`labkit.sandbox.connect(url)`: the virtual phones of a sandbox started elsewhere (`labkit sandbox`,
another process or machine), driven over its control API with the same methods as in-process phones.

    sb = connect("https://127.0.0.1:8443")        # trusts the local sandbox CA when it finds one
    phone = sb.phone("447700900001").set(answer_after=0)
    call = sb.dial("447700900001")                # an inbound call to the application's number
    phone.say(text="hello"); phone.press("1#")
    phone.heard.save("heard.wav")
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from labkit.errors import SandboxError
from labkit.media.recording import Recording
from labkit.sandbox.engine.phones import KEEP

HEAR_RATE = 16000
LONG_POLL = 20.0  # seconds one ?wait= request is held at most (the sandbox caps it at 25)


def _call_reached(view: dict, until: str | None) -> bool:
    if until == "ended":
        return view.get("ended_by") is not None or view.get("status") in FINAL
    if until == "finished":
        return bool(view.get("finished"))
    if until and until.startswith(("played:", "time:")):  # the sandbox keeps the time: its answer decides
        return True
    if until and until.startswith("action:"):
        ncco, ended = view.get("ncco") or {}, view.get("ended_by") is not None
        actions, step = ncco.get("actions") or [], ncco.get("current")
        return ended or (step is not None and step < len(actions) and actions[step].get("action") == until[7:])
    return view.get("status") == until or any(w["payload"].get("status") == until for w in view.get("webhooks", ()))


FINAL = ("completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered", "machine")


def _default_verify(url: str) -> Any:
    """The sandbox CA of this machine's default sandbox home, when the URL is https and it exists."""
    if not url.startswith("https://"):
        return True
    try:
        from labkit.config import state_dir

        ca = state_dir() / "sandbox" / "tls" / "ca.pem"
    except Exception:
        return True
    return str(ca) if ca.is_file() else True


class RemoteSandbox:
    """A sandbox reached over HTTP: phones, dial, calls, reset (see openapi.py)."""

    def __init__(self, url: str, *, verify: Any = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = requests.Session()
        self._http.trust_env = False  # a local sandbox: never through a proxy
        self._http.verify = _default_verify(self.url) if verify is None else verify
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One control API request; SandboxError carrying the problem's detail when it is refused."""
        try:
            r = self._http.request(method, f"{self.url}/_labkit/{path.lstrip('/')}", timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise SandboxError(f"Cannot reach the sandbox at {self.url}: {exc.__class__.__name__}. "
                               "Is `labkit sandbox` running there?") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail") or r.text
            except ValueError:
                detail = r.text
            raise SandboxError(f"The sandbox refused {method} /_labkit/{path} ({r.status_code}): {detail}")
        return r

    def phone(self, number: str) -> RemotePhone:
        """The phone with this number (created on the sandbox if new)."""
        view = self.request("POST", "phones", json={"number": str(number).lstrip("+")}).json()
        return RemotePhone(self, view["number"])

    @property
    def phones(self) -> list[dict]:
        return self.request("GET", "phones").json()["phones"]

    def dial(self, from_number: str, to: str | None = None) -> dict:
        """An inbound call from phone `from_number` to `to` (default: the application's number).

        The phone is made first if new, as the in-process `Sandbox.dial` does (the control API's dial
        answers 404 for an unknown phone)."""
        phone = self.phone(from_number)
        body = {"to": str(to)} if to else {}
        return self.request("POST", f"phones/{phone.number}/dial", json=body).json()

    @property
    def calls(self) -> list[dict]:
        return self.request("GET", "calls").json()["calls"]

    def call(self, uuid: str, *, until: str | None = None, timeout: float = 0.0) -> dict:
        """One call's view; with `until` (a status, `ended` or `finished`), long polls held by the sandbox
        until the call gets there or `timeout` seconds pass (then the view as it is: check it)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            params = {"wait": f"{min(left, LONG_POLL):.3f}", "until": until} if until and left > 0 else None
            view = self.request("GET", f"calls/{uuid}", params=params).json()
            if params is None or _call_reached(view, until) or view.get("finished"):
                return view

    @property
    def webhooks(self) -> dict:
        """The webhooks sent, with chaos delivery's setting and its duplicates/out_of_order counts."""
        return self.request("GET", "webhooks").json()

    @property
    def application(self) -> dict:
        return self.request("GET", "application").json()

    @property
    def number(self) -> str:
        return self.application["number"]

    def reset(self) -> None:
        self.request("POST", "reset")

    def openapi(self) -> dict:
        return self.request("GET", "openapi.json").json()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"<RemoteSandbox {self.url}>"


class RemotePhone:
    """The same phone API as `VirtualPhone`, over HTTP."""

    def __init__(self, sandbox: RemoteSandbox, number: str) -> None:
        self._sb = sandbox
        self.number = number
        self.said_at: float | None = None  # the call second the last say() starts at (VirtualPhone.say)

    def _view(self) -> dict:
        return self._sb.request("GET", f"phones/{self.number}").json()

    def set(self, answer_after: float | None = None, outcome: str | None = None, hangup_after: Any = KEEP,
            machine: bool | None = None) -> RemotePhone:
        body: dict[str, Any] = {"number": self.number}
        for key, value in (("answer_after", answer_after), ("outcome", outcome), ("machine", machine)):
            if value is not None:
                body[key] = value
        if hangup_after is not KEEP:
            body["hangup_after"] = hangup_after
        self._sb.request("POST", "phones", json=body)
        return self

    def __getattr__(self, name: str) -> Any:
        if name in ("state", "outcome", "answer_after", "hangup_after", "machine", "speaking", "position",
                    "received_dtmf"):
            return self._view()[name]
        raise AttributeError(name)

    @property
    def call(self) -> str | None:
        """The uuid of the call the phone is in (or ringing for)."""
        return self._view()["call"]

    @property
    def calls(self) -> list[str]:
        return self._view()["calls"]

    @property
    def busy(self) -> bool:
        return self.state != "idle"

    def wait_for_state(self, state: str, timeout: float = 10.0) -> bool:
        """Block until the phone is in `state` (idle, ringing, answered): long polls the sandbox holds."""
        return self.wait(timeout, state=state)["state"] == state

    def wait(self, timeout: float, *, state: str | None = None, calls: int | None = None) -> dict:
        """The phone's view once it is in `state` and/or has had more than `calls` calls, or after
        `timeout` seconds (long polls: the sandbox answers when the phone changes)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            params: dict[str, Any] = {"wait": f"{max(0.0, min(left, LONG_POLL)):.3f}"}
            if state:
                params["state"] = state
            if calls is not None:
                params["calls"] = int(calls)
            view = self._sb.request("GET", f"phones/{self.number}", params=params).json()
            done = (not state or view["state"] == state) and (calls is None or len(view["calls"]) > calls)
            if done or left <= 0:
                return view

    def answer(self) -> None:
        self._sb.request("POST", f"phones/{self.number}/answer")

    def reject(self) -> None:
        self._sb.request("POST", f"phones/{self.number}/reject")

    def hangup(self) -> None:
        self._sb.request("POST", f"phones/{self.number}/hangup")

    def press(self, digits: str, duration_ms: int | None = None) -> None:
        body: dict[str, Any] = {"digits": str(digits)}
        if duration_ms is not None:
            body["duration_ms"] = int(duration_ms)
        self._sb.request("POST", f"phones/{self.number}/press", json=body)

    def say(self, source: Any = None, rate: int | None = None, *, text: str | None = None) -> float:
        """Text, or audio (a path, WAV/MP3 bytes, a Recording, (samples, rate)) sent as WAV/MP3 bytes."""
        path = f"phones/{self.number}/say"
        if source is None:
            return self._said(self._sb.request("POST", path, json={"text": text or ""}).json())
        if isinstance(source, (str, Path)):
            data = Path(source).read_bytes()
        elif isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            data = _wav_bytes(source, rate)
        ctype = "audio/mpeg" if data[:3] == b"ID3" or data[:2] == b"\xff\xfb" else "audio/wav"
        params = {"text": text} if text else None
        return self._said(self._sb.request("POST", path, data=data, params=params,
                                           headers={"Content-Type": ctype}).json())

    def _said(self, answer: dict) -> float:
        self.said_at = answer.get("starts_at")
        return float(answer["seconds"])

    def heard_since(self, position: int = 0) -> Recording:
        r = self._sb.request("GET", f"phones/{self.number}/heard.wav", params={"since": int(position)})
        return _recording(r.content, f"heard by {self.number}")

    @property
    def heard(self) -> Recording:
        return self.heard_since(0)

    def heard_in(self, call: str) -> Recording:
        r = self._sb.request("GET", f"phones/{self.number}/heard.wav", params={"call": call})
        return _recording(r.content, f"heard by {self.number}", call_uuid=call)

    def __repr__(self) -> str:
        return f"<RemotePhone {self.number} at {self._sb.url}>"


def _wav_bytes(source: Any, rate: int | None) -> bytes:
    import soundfile as sf

    if hasattr(source, "samples") and hasattr(source, "rate"):
        samples, rate = source.samples, source.rate
    elif isinstance(source, tuple):
        samples, rate = source
    else:
        samples = source
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples), int(rate or HEAR_RATE), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _recording(wav: bytes, label: str, **kw: Any) -> Recording:
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return Recording(samples, rate, label=label, **kw)


def connect(url: str, *, verify: Any = None, token: str | None = None) -> RemoteSandbox:
    """A sandbox started elsewhere, by its base URL (`verify`: a CA file, True, or False)."""
    sb = RemoteSandbox(url, verify=verify, token=token)
    sb.request("GET", "application")  # fail now, with a clear message, if it is not there
    return sb
