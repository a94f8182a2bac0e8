"""The lab's answer webhook on the public surface (issue 18, items 5 and 7): no socket tokens for answer
requests it cannot check, and a warning line when the user's answer handler outruns Vonage's wait.

The unsigned-live scenario runs the lab's own webhook handling (`LabWebhooks`, as `Lab` mixes it in) on
a real server in live mode without a signature secret; no tunnel or account is needed for that part.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.server import refusal_totals
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from labkit import ncco
from labkit.config import Settings
from labkit.events import EventLog
from labkit.lab.delivery import OncePerDelivery
from labkit.lab.regions import LabRegions
from labkit.lab.webhooks import ANSWER_SOCKET_TIMEOUT, UNSIGNED_SOCKETS_NOTE, LabWebhooks
from labkit.server import ServerContext, ServerRunner, create_app
from labkit.server.sockets import SocketHub


class UnsignedLiveLab(LabWebhooks, LabRegions):
    """The state `Lab` gives its webhook handling, in live mode with no signature secret."""

    def __init__(self, folder: Path, settings: Settings):
        self.mode, self.settings, self._signature_secret = "live", settings, None
        self.events = EventLog()
        self.sockets = SocketHub(self.events, folder=folder)
        self.calls: dict[str, Any] = {}
        self.number, self._senders = "447700900000", {"447700900001"}  # an outbound call's answer webhook
        self._inbound, self._claimed, self._once = threading.Condition(), set(), OncePerDelivery()
        self._answer_fn, self._event_fns, self.sandbox = None, [], None
        self._regions, self._regional = {}, {}  # LabRegions: where each call is controlled
        self._ctx = ServerContext(events=self.events, answer=self._on_answer_webhook,
                                  instruction=self._on_event_webhook, sockets=self.sockets, mode="live")
        self.runner = ServerRunner(create_app(self._ctx), on_stop=self.sockets.close_all)


@contextlib.contextmanager
def unsigned_live_lab(folder: Path, **environ: str) -> Iterator[UnsignedLiveLab]:
    lab = UnsignedLiveLab(folder, Settings.load(environ={"LABKIT_MODE": "live", **environ}))
    lab.runner.start()
    base = f"ws://127.0.0.1:{lab.runner.port}"
    lab.on_answer(lambda fields: [{"action": "connect", "endpoint": [{
        "type": "websocket", "content-type": "audio/l16;rate=16000", "uri": f"{base}/socket?link=x"}]}])
    try:
        yield lab
    finally:
        lab.runner.stop()


def answer_then_open_socket(lab: UnsignedLiveLab, uuid: str) -> tuple[str, bool]:
    """A forged (unsigned) answer request, then the socket link it got: (uri, whether the socket opened)."""
    r = requests.get(f"http://127.0.0.1:{lab.runner.port}/webhooks/answer", timeout=10,
                     params={"uuid": uuid, "from": "447700900001", "to": "447700900002"})
    assert r.status_code == 200
    uri = r.json()[0]["endpoint"][0]["uri"]
    try:
        connect(uri, open_timeout=10).close()
    except InvalidStatus as exc:
        assert exc.response.status_code == 403
        return uri, False
    return uri, True


def unsigned_answers_get_no_socket_tokens(folder: Path) -> None:
    """Each forged answer request would otherwise open a WebSocket and a recording."""
    with unsigned_live_lab(folder) as lab:
        for i in range(20):
            uri, opened = answer_then_open_socket(lab, f"forged-{i}")
            assert "token=" not in uri and not opened
        assert not lab.sockets.sessions
        totals, lines = refusal_totals(lab.events, lab._ctx.refusals)
        assert totals["socket-token-withheld"] == 20 and lines <= 6


def test_unsigned_live_answers_get_no_socket_tokens(tmp_path):
    unsigned_answers_get_no_socket_tokens(tmp_path)


def test_labkit_unsigned_sockets_opts_in(tmp_path):
    with unsigned_live_lab(tmp_path, LABKIT_UNSIGNED_SOCKETS="1") as lab:
        uri, opened = answer_then_open_socket(lab, "trusted")
        assert "token=" in uri and opened


def test_the_start_warning_says_how_to_opt_in(capsys):
    from labkit.lab.startup import warn_unsigned

    warn_unsigned("https://abc.example")
    err = capsys.readouterr().err
    assert UNSIGNED_SOCKETS_NOTE in err and "LABKIT_UNSIGNED_SOCKETS=1" in err


def test_a_bad_unsigned_sockets_value_is_a_config_error():
    from labkit.errors import ConfigError

    with pytest.raises(ConfigError, match="LABKIT_UNSIGNED_SOCKETS"):
        Settings.load(environ={"LABKIT_UNSIGNED_SOCKETS": "maybe"})


def slow_answer_warns_once(lab: Any, number: str) -> None:
    """An answer handler slower than the application's answer socket_timeout: one warning line."""
    assert lab.answer_timeout == ANSWER_SOCKET_TIMEOUT  # the sandbox's default is Vonage's: 5 s
    lab.answer_timeout = 0.3

    @lab.on_answer
    def slow(fields):
        if fields.get("to") == number:
            time.sleep(0.6)
        return [ncco.talk("Hello")]

    try:
        call = lab.call(number, answer_url=None)
        call.wait_for("completed", timeout=30)
    finally:
        lab.on_answer(None)
        lab._answer_timeout = None
    slow_lines = [e for e in lab.events if e.status == "answer-handler-slow" and e.uuid == call.uuid]
    assert len(slow_lines) == 1 and slow_lines[0].payload["timeout"] == 0.3
    assert "fallback answer URL" in slow_lines[0].payload["reason"]


def test_a_slow_answer_handler_gets_one_warning_line(lab):
    lab.phone("447700900960")
    slow_answer_warns_once(lab, "447700900960")
    fast = lab.call("447700900961", answer_url=None)  # the default answer script: quick, and keeps the call up
    fast.wait_for("answered", timeout=30)
    fast.hangup()
    assert not [e for e in lab.events if e.status == "answer-handler-slow" and e.uuid == fast.uuid]
