"""The event log: waiting, the timeout message, subscriptions, and thread safety."""

import threading
import time

import pytest

from labkit.errors import WaitTimeout
from labkit.events import EventLog


def test_wait_for_event_that_already_arrived():
    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "answered"})
    assert log.wait_for("answered", uuid="u1", timeout=0.1).status == "answered"


def test_wait_for_event_from_another_thread():
    log = EventLog()
    threading.Timer(0.05, lambda: log.add("event", {"uuid": "u1", "status": "ringing"})).start()
    assert log.wait_for("ringing", uuid="u1", timeout=2).uuid == "u1"


def test_timeout_lists_statuses_that_did_arrive():
    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "started"})
    log.add("event", {"uuid": "u1", "status": "ringing"})
    log.add("event", {"uuid": "u2", "status": "answered"})
    with pytest.raises(WaitTimeout) as info:
        log.wait_for("answered", uuid="u1", timeout=0.05)
    assert "started, ringing" in str(info.value) and "answered" in str(info.value)


def test_wait_stops_early_when_the_call_ended():
    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "busy"})
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match="ended with 'busy'"):
        log.wait_for("answered", uuid="u1", timeout=5)
    assert time.monotonic() - start < 1


def test_status_of_instruction_events():
    log = EventLog()
    assert log.add("event", {"uuid": "u", "dtmf": {"digits": "12", "timed_out": False}}).status == "input"
    assert log.add("event", {"recording_url": "https://x/v1/files/1"}).status == "record"
    assert log.add("event", {"reason": "Syntax error"}).status == "error"


def test_subscribers_get_events_and_their_errors_do_not_break_delivery():
    log = EventLog()
    seen = []

    def bad(_):
        raise RuntimeError("widget bug")

    log.subscribe(bad)
    unsubscribe = log.subscribe(seen.append)
    log.add("event", {"uuid": "u", "status": "started"})
    unsubscribe()
    log.add("event", {"uuid": "u", "status": "ringing"})
    assert [e.status for e in seen] == ["started"] and len(log) == 2


def test_concurrent_writers_lose_nothing():
    log = EventLog()

    def write(n):
        for i in range(500):
            log.add("event", {"uuid": f"u{n}", "status": "x", "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log) == 4000
    assert len(log.filter("u3")) == 500
    assert sorted(e.seq for e in log) == [e.seq for e in log]


def test_html_table_escapes_payloads():
    log = EventLog()
    log.add("event", {"uuid": "u", "status": "<script>"})
    assert "<script>" not in log._repr_html_() and "&lt;script&gt;" in log._repr_html_()


def test_leg_less_events_count_for_the_call_of_their_conversation():
    log = EventLog()
    log.add("event", {"uuid": "u1", "conversation_uuid": "CON-1", "status": "answered"})
    log.add("event", {"conversation_uuid": "CON-1", "recording_url": "https://x/v1/files/1"})
    log.add("event", {"conversation_uuid": "CON-2", "recording_url": "https://x/v1/files/2"})
    log.add("event", {"uuid": "u2", "conversation_uuid": "CON-1", "status": "answered"})
    assert [e.payload.get("recording_url") for e in log.for_call("u1", "CON-1")] == [None, "https://x/v1/files/1"]
    assert log.wait_for("record", uuid="u1", conversation_uuid="CON-1", timeout=0.1).payload["recording_url"] \
        .endswith("/1")
    with pytest.raises(WaitTimeout):
        log.wait_for("record", uuid="u1", timeout=0.05)  # without the conversation it names no leg


def test_seq_is_taken_in_append_order_even_when_a_writer_waits_for_the_lock():
    """A writer blocked on the log's lock must not hold a smaller seq than an event appended before it
    (that made `wait_for(after=seq)` skip events and the concurrency test flaky)."""
    import sys

    log = EventLog()
    with log._cond:
        writer = threading.Thread(target=log.add, args=("event", {"uuid": "w", "status": "late"}))
        writer.start()
        # wait (without a timer) until the writer is parked on the lock inside add()
        while True:
            frame = sys._current_frames().get(writer.ident)
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if names[:2] == ["__enter__", "add"]:
                break
        log.add("event", {"uuid": "m", "status": "early"})
    writer.join()
    assert [e.status for e in log] == ["early", "late"]
    assert [e.seq for e in log] == sorted(e.seq for e in log)
    assert log.wait_for("late", uuid="w", after=log[0].seq, timeout=0.1).status == "late"


def test_a_window_in_memory_and_every_event_in_the_journal(tmp_path):
    log = EventLog(window=100, journal=tmp_path / "events.jsonl", text_limit=64)
    for i in range(1000):
        log.add("event", {"uuid": "u", "status": "x", "i": i})
    assert len(log) == 100 and [e.payload["i"] for e in log][:2] == [900, 901]
    everything = list(log.history())
    assert [e.payload["i"] for e in everything] == list(range(1000))  # nothing lost
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    assert log.wait_for(lambda e: e.payload.get("i") == 999, timeout=0.1)


def test_large_text_is_cut_in_memory_with_its_size_but_kept_whole_in_the_journal(tmp_path):
    log = EventLog(window=10, journal=tmp_path / "events.jsonl", text_limit=64)
    big = "x" * 10_000_000
    event = log.add("socket", {"uuid": "u", "event": "websocket:text", "text": big, "nested": {"t": big}})
    assert len(event.payload["text"]) < 200 and "10000000 characters" in event.payload["text"]
    assert "10000000 characters" in event.payload["nested"]["t"]
    assert log[-1] is event
    assert next(log.history()).payload["text"] == big


def test_a_journal_that_cannot_be_written_is_said_once_and_loses_nothing_in_memory(tmp_path):
    (tmp_path / "file").write_text("x")
    log = EventLog(window=10, journal=tmp_path / "file" / "events.jsonl")  # its folder cannot be made
    log.add("event", {"uuid": "u", "status": "started"})
    log.add("event", {"uuid": "u", "status": "ringing"})
    assert [e.status for e in log] == ["started", "journal-stopped", "ringing"]
    assert "cannot be written" in log.journal_error
    assert [e.seq for e in log] == sorted(e.seq for e in log)
def test_a_duplicate_delivery_is_recorded_once():
    log = EventLog()
    payload = {"uuid": "u1", "status": "answered", "timestamp": "2026-01-01T10:00:01.000Z"}
    first = log.add("event", payload)
    assert log.add("event", dict(payload)) is first and len(log) == 1
    log.add("lab", {"uuid": "u1", "status": "stream-started"})
    log.add("lab", {"uuid": "u1", "status": "stream-started"})  # the lab's own notes are not deduplicated
    assert len(log) == 3


def test_status_is_decided_by_statuses_and_timestamps_not_arrival():
    from labkit.lab.delivery import current_status

    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "answered", "timestamp": "2026-01-01T10:00:02.000Z"})
    log.add("event", {"uuid": "u1", "status": "ringing", "timestamp": "2026-01-01T10:00:01.000Z"})
    assert current_status(log) == "answered"
    log.add("event", {"uuid": "u1", "status": "completed", "timestamp": "2026-01-01T10:00:09.000Z"})
    log.add("event", {"uuid": "u1", "status": "answered", "timestamp": "2026-01-01T10:00:02.500Z"})
    assert current_status(log) == "completed"  # a final status is final whenever it arrives
    log2 = EventLog()  # same millisecond: the place in the call's life decides
    log2.add("event", {"uuid": "u2", "status": "ringing", "timestamp": "2026-01-01T10:00:01.000Z"})
    log2.add("event", {"uuid": "u2", "status": "started", "timestamp": "2026-01-01T10:00:01.000Z"})
    assert current_status(log2) == "ringing"


def test_a_wait_gives_late_events_a_moment_after_the_final_one():
    import threading

    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "completed"})
    late = threading.Timer(0.2, lambda: log.add("event", {"uuid": "u1", "status": "answered"}))
    late.start()
    assert log.wait_for("answered", uuid="u1", timeout=5).status == "answered"
    with pytest.raises(WaitTimeout, match="ended with 'completed'"):
        log.wait_for("input", uuid="u1", timeout=30)  # gives up after the grace, not the timeout


def test_what_a_person_reads_has_no_python_in_it():
    """The events table and lines: no dict braces, list brackets, quotes or True/False (issue 22)."""
    from labkit.events import EventLog
    from labkit.readable import readable

    assert readable({"digits": "7", "timed_out": False}) == "digits 7, timed out no"
    assert readable(["7"]) == "7"
    assert readable([{"action": "talk", "text": "hi"}, {"action": "stream"}]) == "2 actions: talk, stream"
    assert readable({"type": "phone", "number": "447700900001"}) == "phone 447700900001"
    log = EventLog()
    log.add("event", {"uuid": "u1", "status": "input", "dtmf": {"digits": "7", "timed_out": False},
                      "speech": {"results": []}, "to": {"type": "phone", "number": "447700900001"}})
    log.add("lab", {"uuid": "u1", "status": "ncco-served", "via": "answer_url",
                    "ncco": [{"action": "talk", "text": "hello"}]})
    import re

    table = log._repr_html_()
    text = re.sub(r"<[^>]+>", " ", table)  # what the notebook shows: the cells' text
    for python in ("{", "}", "[", "]", "'", "False", "True"):
        assert python not in text, (python, text)
    assert "digits 7, timed out no" in table and "1 action: talk" in table
    assert "white-space:nowrap'>ncco-served<" in table  # a status never splits over two lines
    line = list(log)[0].summary()
    assert line.endswith("input digits 7"), line


def test_a_virtual_phone_reads_as_a_sentence(fresh):
    phone = fresh.phone("447700900220").set(outcome="answer", answer_after=0.5)
    assert repr(phone) == "447700900220: a virtual phone, idle; answers after 0.5 s"
    phone.set(outcome="busy", machine=True)
    assert repr(phone) == "447700900220: an answering machine, idle; is busy to every call"
    phone.set(outcome="answer", machine=False)
