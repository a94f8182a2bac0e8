"""The lab's call tests again, with the sandbox delivering webhooks as a network may: late, out of
order and twice (LABKIT_SANDBOX_CHAOS; labkit/sandbox/wire/webhooks.py). Statuses are then decided by their
timestamps and a final one is final whenever it arrives (labkit/events.py)."""

from __future__ import annotations

import os

import pytest
from test_lab import (  # noqa: F401 - collected again here, with this module's `lab` and `fresh`
    test_control_before_answer_and_after_end_are_explained,
    test_inbound_call_reaches_answer_handler,
    test_record_action_and_download,
)
from test_recording_e2e import (  # noqa: F401
    test_app_closing_the_socket_posts_disconnected,
    test_key_presses_on_the_socket_reach_the_event_log,
    test_recording_equals_what_the_phone_said,
)

from labkit import Lab, ncco
from labkit.config import Settings
from labkit.lab.delivery import timeline_key

CHAOS = "jitter=0.1,duplicate=0.3,seed=12"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    old = os.environ.get("LABKIT_SANDBOX_CHAOS")
    os.environ["LABKIT_SANDBOX_CHAOS"] = CHAOS  # read by the Sandbox the lab builds
    chaos_lab = Lab(Settings.load(env_file="/nonexistent/.env", environ={"LABKIT_MODE": "sandbox"}),
                    speed=4.0, quiet=True)
    try:
        chaos_lab._start()
    finally:
        if old is None:
            os.environ.pop("LABKIT_SANDBOX_CHAOS", None)
        else:
            os.environ["LABKIT_SANDBOX_CHAOS"] = old
    assert chaos_lab.sandbox.webhook_chaos is not None
    chaos_lab.sockets.folder = tmp_path_factory.mktemp("chaos-recordings")
    yield chaos_lab
    chaos_lab.stop()


@pytest.fixture
def fresh(lab):
    lab.clear_handlers()
    yield lab
    lab.clear_handlers()


def test_outbound_call_statuses_by_timestamp(lab):
    calls = [lab.call(f"44770090014{i}", ncco=[ncco.keep_open(lab)]) for i in range(6)]
    for call in calls:
        call.wait_for("answered", timeout=10)
        call.say("Testing one two")
        call.hangup()
    for call in calls:
        call.wait_for("completed", timeout=10)
        assert call.status == "completed"
        events = list(call.events.filter(kind="event"))
        # by when the platform says each happened (same millisecond: by place in the call's life)
        statuses = [e.status for e in sorted(events, key=timeline_key)]
        assert statuses == ["started", "ringing", "answered", "completed"]  # each once, in the call's order
    hooks = [r for r in lab.sandbox.webhook_log if r.kind == "event" and r.payload.get("uuid") in
             {c.uuid for c in calls}]
    assert len(hooks) > 24  # duplicates were delivered (and recorded once): 0.7**24 odds of none


def test_chaos_settings_and_delivery():
    import threading

    from labkit.sandbox.wire.webhooks import OrderedSender, WebhookChaos

    assert WebhookChaos.parse("") is None and WebhookChaos.parse("off") is None
    assert WebhookChaos.parse("1").duplicate == 0.2
    parsed = WebhookChaos.parse("jitter=0.5,duplicate=1,seed=3")
    assert (parsed.jitter, parsed.duplicate, parsed.seed) == (0.5, 1.0, 3)
    with pytest.raises(ValueError, match="unknown setting"):
        WebhookChaos.parse("loss=0.1")

    class Client:
        chaos = WebhookChaos(jitter=0.05, duplicate=1.0, seed=1)
        sent: list = []
        lock = threading.Lock()

        def send(self, kind, url, method, payload, **kw):
            with self.lock:
                self.sent.append((kind, payload["n"]))
            return payload["n"]

    client = Client()
    sender = OrderedSender(client, "test")
    futures = [sender.send("event", "http://x", "POST", {"n": n}) for n in range(5)]
    futures.append(sender.send("instruction", "http://x", "POST", {"n": 99}))
    assert [f.result(timeout=5) for f in futures] == [0, 1, 2, 3, 4, 99]
    sender.close(wait=5)
    assert sorted(client.sent) == sorted([("event", n) for n in range(5)] * 2 + [("instruction", 99)] * 2)
