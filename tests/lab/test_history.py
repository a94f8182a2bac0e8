"""The call history and inspector model (labkit.lab.history, labkit.lab.exchange): rows a person reads,
and why a call went wrong in the same sentences as the sandbox page, in sandbox and in live mode."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from support.flaky_app import FlakyApp
from support.waiting import wait_until

from labkit.events import EventLog
from labkit.lab.calls import Call
from labkit.lab.exchange import exchange
from labkit.lab.history import CallHistory, problem_of
from labkit.sandbox.control.problems import in_words

PHONE = "447700900461"


@pytest.fixture
def app():
    flaky = FlakyApp()
    yield flaky
    if flaky.server.socket.fileno() != -1:
        flaky.stop()




def _call(lab, url: str) -> Call:
    return lab.call(PHONE, answer_url=url)


def test_history_lists_each_call_once_newest_first_with_its_facts(fresh):
    fresh.phone(PHONE).set(answer_after=0, hangup_after=0.2)
    history = CallHistory(limit=2)
    calls = []
    for _ in range(3):  # one after the other: the phone is busy while it is in a call
        calls.append(fresh.call(PHONE))
        assert history.add(calls[-1])
        calls[-1].wait_for("completed")
    assert not history.add(calls[-1])  # once
    entries = history.entries()
    assert [e.uuid for e in entries] == [calls[2].uuid, calls[1].uuid]  # newest first, at most `limit`
    newest = entries[0]
    assert (newest.direction, newest.other, newest.status, newest.problem) == ("outbound", PHONE, "completed", None)
    assert newest.duration is not None and newest.duration >= 0
    assert newest.line().endswith(f"completed, {newest.duration:.0f} s (call {calls[2].uuid[:8]})")
    assert "outbound to " + PHONE in newest.line()


def test_each_way_an_app_fails_reads_as_the_pages_sentence(fresh, app):
    fresh.phone(PHONE).set(answer_after=0, hangup_after=1)
    url = f"{app.url}/answer"
    said = {}
    for mode in ("500", "bad", "down"):
        if mode == "down":
            app.stop()
        else:
            app.mode = mode
        call = _call(fresh, url)
        said[mode] = wait_until(lambda call=call: problem_of(call))
        call.wait_for("completed")
    # An app that is down: the platform falls back to the application's (the lab's) answer URL. An app that
    # answers 500 gave its answer: no fallback on Vonage ([WH], [SUP-NCCO]), the call fails.
    assert said["500"].startswith(in_words(f"answer_url {url}: HTTP 500"))
    assert "fallback answer URL" not in said["500"]
    assert said["down"].startswith(f"your app at {url} refused the connection: is it running")
    assert "fallback answer URL" in said["down"] and "the lab's own" in said["down"]
    assert said["bad"].startswith("your app's NCCO was refused: action 0 (stream)")


def test_a_calls_exchange_lists_webhooks_scripts_and_actions_in_order(fresh, app):
    fresh.phone(PHONE).set(answer_after=0, hangup_after=1)
    app.mode = "bad"
    call = _call(fresh, f"{app.url}/answer")
    call.wait_for("completed")
    wait_until(lambda: all("waiting for" not in s.title for s in exchange(call)))
    steps = exchange(call)
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    answer = next(s for s in steps if s.title.startswith(f"answer GET {app.url}/answer"))
    assert "answered 200 (" in answer.title and " ms" in answer.title
    script = steps[steps.index(answer) + 1]
    assert script.kind == "script" and not script.ok and "refused by the sandbox: action 0 (stream)" in script.title
    assert '"streamUrl": "http://127.0.0.1:9/a.mp3"' in script.body  # pretty-printed, as the app sent it
    assert any(s.title.startswith("event POST") and "(completed)" in s.title for s in steps)

    app.mode = "ok"
    call = _call(fresh, f"{app.url}/answer")
    call.wait_for("completed")
    steps = exchange(call)
    assert any(s.kind == "script" and s.ok and s.title.endswith("accepted: 1 action: talk") for s in steps)
    assert any(s.kind == "action" and s.title.startswith("talk: ") for s in steps)  # the action as it ran


def _live_call(events: list[tuple[str, dict]]) -> Call:
    """A call of a lab with no sandbox (live mode): only what its webhooks said."""
    log = EventLog()
    lab = SimpleNamespace(events=log, sandbox=None, audio_path=lambda name: None)
    for kind, payload in events:
        log.add(kind, {"uuid": "u1", "conversation_uuid": "c1", **payload})
    return Call(lab, "u1", conversation_uuid="c1", to="447700900001")  # type: ignore[arg-type]


def test_live_mode_says_what_the_webhooks_said_and_no_more():
    fell_back = _live_call([
        ("event", {"status": "started"}),
        ("answer", {"reason": "timeout", "original_request": '{"url":"https://app.example/answer","type":"answer"}'}),
    ])
    assert problem_of(fell_back).startswith("your app at https://app.example/answer did not answer in time")
    steps = exchange(fell_back)
    assert [s.title for s in steps] == [
        "event received: started",
        "fallback answer request received by the lab: the app at https://app.example/answer failed (timeout)"]
    assert not any(" ms" in s.title for s in steps)  # the lab cannot see how long the platform waited

    refused = _live_call([("event", {"status": "answered"}),
                          ("event", {"reason": "Syntax error in NCCO. Invalid value type or action."})])
    assert problem_of(refused) == ("the platform reported an error on this call: Syntax error in NCCO. "
                                   "Invalid value type or action.")
    busy = _live_call([("event", {"status": "busy"})])
    assert problem_of(busy) == "the phone was busy"
    fine = _live_call([("event", {"status": "answered"}), ("event", {"status": "completed", "duration": "7"})])
    assert problem_of(fine) is None
    history = CallHistory()
    history.add(fine)
    assert history.entries()[0].duration == 7.0 and history.entries()[0].status == "completed"


def test_the_websocket_leg_is_labelled_wherever_events_are_read(fresh):
    from labkit import ncco

    fresh.phone(PHONE).set(answer_after=0, hangup_after=None)
    call = fresh.call(PHONE, ncco=[ncco.websocket(fresh, rate=16000)])
    call.wait_for("answered")
    fresh.socket(call)
    call.hangup()
    call.wait_for("completed")
    events = [e for e in fresh.events if e.payload.get("conversation_uuid") == call.conversation_uuid]
    socket_leg = next(e.uuid for e in events if e.kind == "event" and e.uuid != call.uuid)
    table = fresh.events.filter(socket_leg)._repr_html_()
    assert f"{socket_leg[:8]} (WebSocket leg)" in table
    assert "token=" not in table  # the socket's one-use token is not shown in the to column
    lines = [e.summary() for e in events if e.uuid == socket_leg]
    assert lines and all(line.endswith("(WebSocket leg)") for line in lines)
    assert not any("WebSocket leg" in e.summary() for e in events if e.uuid == call.uuid)
    fig = fresh.timeline()
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert f"{socket_leg[:8]}\nWebSocket leg" in ticks, ticks
