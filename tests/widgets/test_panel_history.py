"""The panel's problem line and call history, driven headless against the shared sandbox lab: each way an
app fails shows its sentence beside the status, every call gets a row, and opening a row shows the call's
exchange with the app and the audio the phone heard. (The browser test, test_browser.py, does the same
through JupyterLab and chromium.)"""

from __future__ import annotations

import html

import pytest
from support.flaky_app import FlakyApp
from support.waiting import wait_until

from labkit.widgets.panel_history import HistoryView

PHONE = "447700900471"




@pytest.fixture
def app():
    flaky = FlakyApp()
    yield flaky
    if flaky.server.socket.fileno() != -1:
        flaky.stop()


@pytest.fixture
def panel(fresh, app):
    fresh.phone(PHONE).set(answer_after=0, hangup_after=None)
    p = fresh.panel(to=PHONE, answer_url=f"{app.url}/answer", softphone=False)
    yield p
    p.close()
    if p.call is not None and not p.call.ended:
        p.call.hangup()


def _text(widget) -> str:
    return html.unescape(widget.value)


def _place_and_end(panel) -> None:
    """A call the app's script ends by itself (the ok app says Hello, then the NCCO runs out)."""
    panel.call_button.click()
    assert panel.call is not None, panel.error.value
    panel.call.wait_for("completed")


def test_each_failure_shows_beside_the_status_and_the_history_lists_every_call(panel, app):
    url = f"{app.url}/answer"
    expected = {
        "500": f"your app at {url} answered HTTP 500: look at your app's log for the error",
        "bad": "your app's NCCO was refused: action 0 (stream): 'streamUrl' must be an array",
        "down": f"your app at {url} refused the connection: is it running, on that port?",
    }
    for n, mode in enumerate(("500", "bad", "down"), start=1):
        if mode == "down":
            app.stop()
        else:
            app.mode = mode
        panel.call_button.click()
        wait_until(lambda mode=mode: expected[mode] in _text(panel.problem), what=f"the {mode} sentence")
        if not panel.call.ended:
            panel.hangup_button.click()
        panel.call.wait_for("completed")
        assert len(panel.history.rows.children) == n
    rows = [_text(row.children[1]) for row in panel.history.rows.children]
    assert all("outbound to " + PHONE in r and "went wrong" in r for r in rows), rows
    assert panel.history.history.calls[0] is panel.call  # newest first
    assert "call history: 3 calls" in repr(panel)


def test_a_new_call_clears_the_last_calls_problem(panel, app):
    app.mode = "500"
    panel.call_button.click()
    wait_until(lambda: "HTTP 500" in _text(panel.problem), what="the 500 sentence")
    panel.hangup_button.click()
    panel.call.wait_for("completed")
    app.mode = "ok"
    panel.call_button.click()
    wait_until(lambda: panel.call.status == "completed", what="the talk to end the call")
    assert panel.problem.value == ""


def test_opening_a_call_shows_its_exchange_and_what_the_phone_heard(panel, app):
    app.mode = "ok"
    _place_and_end(panel)
    view: HistoryView = panel.history
    open_button = view.rows.children[0].children[0]
    open_button.click()
    assert open_button.description == "Close"
    detail = wait_until(lambda: "waiting for" not in _text(view.detail) and _text(view.detail),
                        what="the last webhook's answer in the open call")
    assert f"answer GET {app.url}/answer: answered 200 (" in detail and " ms)" in detail
    assert "the app's NCCO, accepted: 1 action: talk" in detail
    assert '"action": "talk"' in detail  # pretty-printed
    assert "talk: " in detail  # the action as it ran
    assert "event POST" in detail and "(completed): answered 204" in detail
    assert view.heard.layout.display is None and bytes(view.heard.value).startswith(b"RIFF")
    assert f"what {PHONE} heard" in _text(view.heard_label)
    open_button.click()  # a second click closes it
    assert view.detail.value == "" and open_button.description == "Open"
    assert view.error.value == ""


def test_the_labs_own_answer_handler_failing_is_named_with_its_error(fresh):
    """With no answer_url the app is the lab itself: a handler that raises is the reason, not "HTTP 500"."""
    fresh.phone(PHONE).set(answer_after=0, hangup_after=None)

    def broken(_fields):
        raise KeyError("caller")

    fresh.on_answer(broken)
    p = fresh.panel(to=PHONE, softphone=False)
    try:
        p.call_button.click()
        wait_until(lambda: "your answer handler (lab.on_answer) raised KeyError" in _text(p.problem),
                   what="the handler's error in the problem line")
        p.call.wait_for("completed")
        assert p.history.history.entry(p.call).problem.startswith("your answer handler (lab.on_answer) raised")
    finally:
        p.close()


def test_a_re_run_panel_lists_the_calls_the_last_one_steered(panel, app, fresh):
    """Re-running the panel's cell makes a new panel: its history still lists the earlier calls, newest
    first, as a phone's call log would."""
    app.mode = "ok"
    for _ in range(2):
        _place_and_end(panel)
    again = fresh.panel(to=PHONE, answer_url=f"{app.url}/answer", softphone=False)
    try:
        assert [c.uuid for c in again.history.history.calls] == [c.uuid for c in panel.history.history.calls]
        assert len(again.history.rows.children) == 2
        _place_and_end(again)
        assert len(again.history.rows.children) == 3 and again.history.history.calls[0] is again.call
    finally:
        again.close()
