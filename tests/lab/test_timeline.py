"""call_timeline: spans from the lab's own events, markers from webhooks, and a figure that draws."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from labkit.events import Event, EventLog
from labkit.lab.timeline import call_timeline, play_seconds_from, spans

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LEG = "aaaaaaaa-0000-4000-8000-000000000001"


def log_of(*items: tuple[float, str, dict]) -> EventLog:
    """An EventLog with events at given offsets (seconds) from T0, in order."""
    return EventLog(Event(kind, {"uuid": LEG, **payload}, received_at=T0 + timedelta(seconds=dt))
                    for dt, kind, payload in items)


def test_stream_and_talk_spans_end_at_their_stop_or_the_call_end():
    log = log_of(
        (0.0, "event", {"status": "started", "direction": "outbound"}),
        (1.0, "event", {"status": "answered"}),
        (2.0, "lab", {"status": "stream-started", "file": "https://example.invalid/a.mp3", "loop": 0}),
        (5.0, "lab", {"status": "stream-stopped"}),
        (5.5, "lab", {"status": "talk-started", "text": "Goodbye"}),
        (7.0, "event", {"status": "completed"}),
    )
    found = {s.kind: s for s in spans(log)}
    assert (found["stream"].start, found["stream"].end) == (2.0, 5.0)
    assert (found["talk"].start, found["talk"].end) == (5.5, 7.0)  # no stop: ends with the call
    assert found["stream"].label == "a.mp3"


def test_a_new_stream_replaces_the_playing_one_and_open_spans_stay_open():
    log = log_of(
        (0.0, "event", {"status": "answered"}),
        (1.0, "lab", {"status": "stream-started", "file": "x.mp3", "loop": 0}),
        (3.0, "lab", {"status": "stream-started", "file": "y.mp3", "loop": 0}),
    )
    first, second = spans(log)
    assert (first.start, first.end) == (1.0, 3.0)
    assert second.start == 3.0 and second.end is None  # still playing when drawn


def test_websocket_span_from_connected_to_closed():
    log = log_of(
        (0.0, "event", {"status": "answered"}),
        (0.5, "socket", {"event": "websocket:connected", "content-type": "audio/l16;rate=16000"}),
        (1.0, "socket", {"event": "websocket:dtmf", "digit": "5"}),
        (4.0, "socket", {"status": "socket-closed"}),
    )
    (ws,) = spans(log)
    assert (ws.kind, ws.start, ws.end, ws.label) == ("websocket", 0.5, 4.0, "16 kHz")


def test_finite_stream_of_a_served_file_ends_after_its_length(lab):
    from labkit.media.audio import probe

    length = probe(lab.audio_path("music.wav")).duration
    log = log_of((0.0, "event", {"status": "answered"}),
                 (1.0, "lab", {"status": "stream-started", "file": "music.wav", "loop": 2}))
    (stream,) = spans(log, play_seconds_from(lab.audio_path))
    assert stream.estimated and stream.end == pytest.approx(1.0 + 2 * length)
    (unknown,) = spans(log)  # without the lab's files: no length to go by
    assert unknown.end is None and not unknown.estimated


def test_figure_draws_statuses_spans_and_several_legs(tmp_path):
    other = "bbbbbbbb-0000-4000-8000-000000000002"
    log = log_of(
        (0.0, "event", {"status": "started"}),
        (0.4, "event", {"status": "ringing"}),
        (1.0, "event", {"status": "answered"}),
        (2.0, "lab", {"status": "stream-started", "file": "music.mp3", "loop": 0}),
        (3.0, "event", {"status": "input", "dtmf": {"digits": "12", "timed_out": False}}),
        (4.0, "lab", {"status": "stream-stopped"}),
        (6.0, "event", {"status": "completed"}),
    )
    log._events.append(Event("event", {"uuid": other, "status": "failed", "detail": "cannot_route"},
                             received_at=T0 + timedelta(seconds=2.5)))
    fig = call_timeline(log)
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"started", "ringing", "answered", "completed", "input (12)", "failed (cannot_route)"} <= texts
    assert any(t.startswith("stream: music.mp3") for t in texts)
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == ["bbbbbbbb", "aaaaaaaa"]
    assert "seconds since 12:00:00" in ax.get_xlabel()
    fig.savefig(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 5000


def test_empty_log_and_given_axes():
    import matplotlib.pyplot as plt

    fig = call_timeline(EventLog())
    assert "no events yet" in fig.axes[0].texts[0].get_text()
    own_fig, own_ax = plt.subplots()
    plt.close(own_fig)
    assert call_timeline(log_of((0.0, "event", {"status": "answered"})), ax=own_ax) is own_fig


def test_call_timeline_of_a_real_sandbox_call(lab):
    call = lab.call("447700900111")
    call.wait_for("answered", timeout=10)
    call.stream("music.mp3", loop=0)
    call.say("Hello")
    call.stop_stream()
    call.hangup()
    call.wait_for("completed", timeout=10)
    kinds = [s.kind for s in spans(call.events)]
    assert kinds == ["stream", "talk"]
    fig = call.timeline()
    assert "completed" in {t.get_text() for t in fig.axes[0].texts}


# -- the NCCO the lab served, replayed as bars ---------------------------------------------------------
def _script_spans(log: EventLog, play_seconds=lambda name: None):
    from labkit.lab.ncco_timing import script_spans

    items = list(log)
    at = {e.seq: (e.received_at - items[0].received_at).total_seconds() for e in items}
    ends = {e.uuid: at[e.seq] for e in reversed(items) if e.kind == "event" and e.status in ("completed",)}
    return script_spans(items, at, ends, play_seconds)


def test_an_answer_ncco_runs_from_answered_in_order_and_its_last_action_ends_with_the_call():
    served = {"status": "ncco-served", "via": "answer_url", "ncco": [
        {"action": "talk", "text": "x" * 20},  # 20 characters: about 1.4 s of speech
        {"action": "stream", "streamUrl": ["http://127.0.0.1:1/audio/music.mp3"]},
    ]}
    log = log_of((0.0, "lab", served), (0.5, "event", {"status": "answered"}),
                 (9.0, "event", {"status": "completed"}))
    talk, stream = _script_spans(log, play_seconds=lambda name: {"music.mp3": 6.0}[name])
    assert (talk.kind, talk.start, talk.estimated) == ("talk", 0.5, True)
    assert talk.end == pytest.approx(0.5 + 20 * 0.07)
    assert (stream.kind, stream.label, stream.start) == ("stream", "music.mp3", talk.end)
    assert (stream.end, stream.estimated) == (9.0, False)  # the last action: the call ended right after it


def test_barge_in_stream_and_input_end_at_the_key_press_and_the_reply_script_follows():
    first = {"status": "ncco-served", "via": "create-call", "ncco": [
        {"action": "stream", "streamUrl": ["https://example.invalid/m.mp3"], "loop": 0, "bargeIn": True},
        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 1, "timeOut": 10}},
    ]}
    reply = {"status": "ncco-served", "via": "event_url", "ncco": [{"action": "talk", "text": "Bye"}]}
    log = log_of((0.0, "lab", first), (1.0, "event", {"status": "answered"}),
                 (3.0, "event", {"dtmf": {"digits": "7"}}), (3.0, "lab", reply),
                 (4.0, "event", {"status": "completed"}))
    found = {s.kind: s for s in _script_spans(log)}
    assert (found["stream"].start, found["stream"].end, found["stream"].background) == (1.0, 3.0, True)
    assert (found["input"].start, found["input"].end, found["input"].estimated) == (1.0, 3.0, False)
    assert (found["talk"].start, found["talk"].end) == (3.0, 4.0)


def test_record_runs_beside_the_next_actions_and_conversation_lasts_until_the_end():
    served = {"status": "ncco-served", "via": "answer_url", "ncco": [
        {"action": "record"}, {"action": "conversation", "name": "room"}]}
    log = log_of((0.0, "event", {"status": "answered"}), (0.0, "lab", served),
                 (5.0, "event", {"status": "completed"}), (5.2, "event", {"recording_url": "https://x.invalid/r"}))
    record, conversation = _script_spans(log)
    assert (record.kind, record.background, record.start) == ("record", True, 0.0)
    assert record.end == 5.0  # cut at the end of the call (the record event comes after)
    assert (conversation.kind, conversation.label, conversation.start, conversation.end) == (
        "conversation", "room", 0.0, 5.0)


def test_timeline_of_a_sandbox_call_draws_the_scripts_talk_and_stream_bars(fresh):
    from labkit import ncco

    to, _phone = fresh.callee("447700900301")
    call = fresh.call(to, ncco=[ncco.talk("Hello there."), ncco.stream(fresh, "beep.wav")])
    call.wait_for("completed", timeout=30)
    served = [e for e in call.events if e.status == "ncco-served"]
    assert len(served) == 1 and served[0].payload["via"] == "create-call"
    fig = call.timeline()  # knows where the lab's files are: the stream's bar has its file's length
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("talk: \u201cHello there.") for t in labels), labels
    assert any(t.startswith("stream: beep.wav") for t in labels), labels
    bars = [c for c in fig.axes[0].collections if c.__class__.__name__ == "PolyCollection"]
    assert len(bars) >= 2
