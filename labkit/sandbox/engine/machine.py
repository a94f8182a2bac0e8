"""Answering machine detection: `machine_detection` / `advanced_machine_detection` of `POST /v1/calls`,
reported from what the virtual phone is (`phone.set(machine=True)` is an answering machine).

Sources (tags of ../shared/reference/vonage-platform.md section 5):
- `machine_detection: continue` sends the call event `machine` to the event_url, `hangup` ends the call,
  whose reported status is then `machine`; analysis takes about 5 s [OAS-VOICE], [HELP-MD].
- `advanced_machine_detection` overrides it: `behavior` continue|hangup, `mode` default (asynchronous:
  the NCCO goes on at once, status and beep events both arrive) | detect (synchronous, only the status
  event) | detect_beep (synchronous, only a beep event), `beep_timeout` 30-120 s [OAS-VOICE], [DOC-AMD].
- Events carry `call_uuid` (not `uuid`), from, to, status human|machine, conversation_uuid, timestamp;
  the beep event adds `sub_state: beep_start` [NDP:webhook-reference.md], [JAVA], [DOTNET-DOC].
- Detection starts after `answered` [DOC-AMD]. NCCO `connect` takes `machineDetection` /
  `advancedMachineDetection` for the leg it dials [PY-VOICE:ncco.py] (reference section 5).

UNCONFIRMED, kept here: the 5 s analysis (`DETECTION_SECONDS`) for every call; standard detection also
sends `human` for a person; a synchronous mode holds the NCCO until its event; in `detect_beep` a person
gets the `human` status event (no beep is ever heard) and a machine's beep event comes when its greeting
ends; `hangup` ends a machine's call as soon as it is detected.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.sandbox.audio.sources import beep
from labkit.sandbox.engine.exceptions import invalid
from labkit.sandbox.engine.legs import iso, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.legs import SandboxCall
    from labkit.sandbox.engine.phones import VirtualPhone
    from labkit.sandbox.engine.platform import Platform

DETECTION_SECONDS = 5.0
GREETING = "Hello, you have reached my voicemail. Please leave a message after the tone."
MODES = ("default", "detect", "detect_beep")
BEHAVIORS = ("continue", "hangup")


def from_connect(action: dict) -> dict | None:
    """The detection an NCCO `connect` asks for (`machineDetection`, `advancedMachineDetection`),
    already checked by ncco_schema; same settings as `POST /v1/calls` [PY-VOICE:ncco.py]."""
    return settings_from({"machine_detection": action.get("machineDetection"),
                          "advanced_machine_detection": action.get("advancedMachineDetection")})


def settings_from(body: dict) -> dict | None:
    """The detection a `POST /v1/calls` body asks for (checked like the API: 400 naming the field)."""
    amd = body.get("advanced_machine_detection")
    if amd is not None:
        if not isinstance(amd, dict):
            raise invalid("advanced_machine_detection", "Invalid type parameter provided",
                          "advanced_machine_detection must be an object {behavior, mode, beep_timeout}")
        behavior, mode = amd.get("behavior", "continue"), amd.get("mode", "detect")
        if behavior not in BEHAVIORS:
            raise invalid("advanced_machine_detection.behavior", "Invalid value", "behavior must be continue or hangup")
        if mode not in MODES:
            raise invalid("advanced_machine_detection.mode", "Invalid value",
                          f"mode must be one of {', '.join(MODES)}")
        timeout = amd.get("beep_timeout", 45)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 30 <= timeout <= 120:
            raise invalid("advanced_machine_detection.beep_timeout", "Value out of range (30-120)",
                          "beep_timeout must be a whole number of seconds from 30 to 120")
        return {"behavior": behavior, "mode": mode, "beep_timeout": timeout, "advanced": True}
    standard = body.get("machine_detection")
    if standard is None:
        return None
    if standard not in BEHAVIORS:
        raise invalid("machine_detection", "Invalid value", "machine_detection must be continue or hangup")
    return {"behavior": standard, "mode": "default", "advanced": False}


def greeting_audio(p: Platform, rate: int) -> np.ndarray:
    """What an answering machine plays: its greeting, then the tone."""
    return np.concatenate([p.sources.talk(GREETING, rate), np.zeros(rate // 4, dtype=np.int16), beep(rate, 0.5)])


def prepare(phone: VirtualPhone) -> None:
    """Synthesize the greeting in the background when a phone becomes a machine (cached for its calls)."""
    phone._platform.sources.prefetch_talk(GREETING, 16000)


def play_greeting(phone: VirtualPhone) -> None:
    """An answering machine picked up: it speaks its greeting and beep into the call.

    Called under the platform lock (on answer), so the audio is made on a thread of its own.
    """
    threading.Thread(target=lambda: phone.say((greeting_audio(phone._platform, 16000), 16000)),
                     name="sandbox-machine-greeting", daemon=True).start()


def _event(p: Platform, leg: SandboxCall, status: str, **extra: Any) -> dict:
    return {"call_uuid": leg.uuid, "from": leg.from_address, "to": leg.to_address, "status": status,
            "conversation_uuid": leg.conversation.uuid, "timestamp": iso(utcnow()), **extra}


def _greeting_seconds(p: Platform) -> float:
    return greeting_audio(p, 16000).size / 16000


def detect(p: Platform, leg: SandboxCall) -> None:
    """Run the detection the call asked for, once it is answered and before its NCCO runs.

    Synchronous modes return once their event is sent; the others schedule it and return at once.
    """
    cfg = leg.machine_detection
    if not isinstance(cfg, dict):
        return
    is_machine = bool(leg.phone is not None and leg.phone.machine)
    if cfg["advanced"] and cfg["mode"] in ("detect", "detect_beep"):
        p.sleep(leg, DETECTION_SECONDS)
        _report(p, leg, cfg, is_machine)
        if is_machine and cfg["mode"] == "detect_beep" and not leg.ended:
            p.sleep(leg, max(0.02, _greeting_seconds(p) - DETECTION_SECONDS))
            p.post(leg, _event(p, leg, "machine", sub_state="beep_start"))
        return

    def later() -> None:
        _report(p, leg, cfg, is_machine)
        if is_machine and cfg["advanced"] and not leg.ended:  # mode default: the beep event too
            delay = max(0.02, _greeting_seconds(p) - DETECTION_SECONDS)
            leg.timers.append(p.clock.call_later(delay, lambda: leg.ended or p.post(
                leg, _event(p, leg, "machine", sub_state="beep_start"))))

    with p.lock:
        leg.timers.append(p.clock.call_later(
            DETECTION_SECONDS, lambda: threading.Thread(target=later, daemon=True).start()))


def _report(p: Platform, leg: SandboxCall, cfg: dict, is_machine: bool) -> None:
    if leg.ended:
        return
    if is_machine and cfg["behavior"] == "hangup":
        p.end_leg(leg, "machine")  # the call ends; its final event reports status machine [HELP-MD]
        return
    if not (is_machine and cfg["mode"] == "detect_beep"):
        p.post(leg, _event(p, leg, "machine" if is_machine else "human"))
