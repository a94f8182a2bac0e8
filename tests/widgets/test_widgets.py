"""The control panel and softphone, driven headless against a real sandbox lab (no browser).

Clicking in plain Python (`button.click()`, `toggle.value = True`) runs exactly the handlers a
browser click runs; the assertions read widget values, which is what a browser would render.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import ipywidgets as widgets
import numpy as np
import pytest
from support.audio_checks import assert_heard_in_order, without_silent_ticks
from support.waiting import wait_until

import labkit.errors
from labkit.widgets import ControlPanel, LiveWaveform
from labkit.widgets.waveform import png_bytes, render_waveform


@pytest.fixture
def make_panel(fresh) -> Iterator[Callable[..., ControlPanel]]:
    """Build panels on the shared sandbox lab; close them and give their phones back afterwards."""
    made: list[ControlPanel] = []

    def make(**kwargs) -> ControlPanel:
        p = fresh.panel(**kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
        if p.softphone is not None:
            assert p.softphone.phone.outcome == "answer"  # closing gave the phone back
        if p.call is not None and not p.call.ended:
            try:
                p.call.hangup()
            except Exception:  # noqa: BLE001 - already over
                pass


# -- pure parts ------------------------------------------------------------------------------------------
def test_png_encoder_and_waveform_render():
    png = render_waveform((np.sin(np.arange(8000) / 5) * 16000).astype(np.int16), width=200, height=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in png and png.endswith(b"IEND\xaeB`\x82")
    assert png_bytes(np.zeros((2, 3, 3), np.uint8))[16:24] == (3).to_bytes(4, "big") + (2).to_bytes(4, "big")
    assert render_waveform(np.zeros(0, np.int16)) != png  # empty audio still draws (the axis)


def test_live_waveform_throttles_redraws_and_changes_image():
    w = LiveWaveform(seconds=1.0, rate=16000, fps=5)
    try:
        blank = w.image.value
        frame = (np.full(320, 12000, np.int16)).tobytes()
        for _ in range(200):  # 4 s of frames as fast as possible
            w.feed(frame)
        wait_until(lambda: w.renders >= 1, 3, "a redraw")
        time.sleep(0.5)
        assert 1 <= w.renders <= 5  # throttled: not one redraw per frame
        assert w.image.value != blank
        assert "peak -9 dBFS" in w.caption.value
    finally:
        w.close()


# -- the panel -----------------------------------------------------------------------------------------
def test_panel_call_stream_events_and_hang_up(make_panel, fresh):
    p = make_panel(to="447700900201")
    phone = p.softphone.phone
    assert p.status.value == "no call" and "will call 447700900201" in p.to_hint.value
    p.call_button.click()
    assert p.error.value == "", p.error.value
    wait_until(lambda: p.softphone.state.value == "ringing", what="the softphone to ring")
    assert not p.softphone.answer_button.disabled
    p.softphone.answer_button.click()
    wait_until(lambda: p.status.value == "answered", what="'answered' in the status label")
    assert p.softphone.state.value == "answered"
    assert "answered" in p.events_html.value

    renders = p.waveform.renders
    p.stream_file.value = "music.wav"
    p.stream_toggle.value = True
    assert p.error.value == "", p.error.value
    assert p.stream_toggle.description == "Stop stream"
    wait_until(lambda: "stream-started" in p.events_html.value, what="stream-started in the event log")
    wait_until(lambda: p.waveform.renders > renders + 1, what="the waveform to redraw")
    time.sleep(0.3)
    p.stream_toggle.value = False
    assert p.error.value == "", p.error.value
    wait_until(lambda: "stream-stopped" in p.events_html.value, what="stream-stopped in the event log")

    p.say_button.click()
    p.dtmf_keys["5"].click()
    p.mute_toggle.value = True
    p.mute_toggle.value = False
    p.earmuff_toggle.value = True
    assert p.error.value == "", p.error.value
    p.hangup_button.click()
    wait_until(lambda: p.status.value == "completed", what="'completed' in the status label")
    assert not p.earmuff_toggle.value  # reset when the call ended
    wait_until(lambda: p.softphone.state.value == "idle", what="the softphone to go idle")
    wait_until(lambda: bytes(p.softphone.player.value[:4]) == b"RIFF", what="the phone's heard audio")
    heard = phone.heard_in(p.call.uuid)
    assert heard.duration > 0.5 and np.abs(heard.samples).max() > 1000  # it heard the music


def test_invalid_number_shows_an_error_not_an_exception(make_panel):
    p = make_panel(to="447700900202")
    p.to.value = "0123"
    assert "0123 is not a phone number" in p.to_hint.value and "#b00020" in p.to_hint.value
    p.call_button.click()  # must not raise
    # One red line, short, in the panel's words (the long hint is already under the To box).
    assert "Fix the number in To first" in p.error.value and "not a phone number" not in p.error.value
    assert p.call is None and isinstance(p.last_error, ValueError) and not p.call_button.disabled
    p.to.value = "+44 7700 900202"
    assert "will call 447700900202" in p.to_hint.value
    assert p.error.value == ""  # typing a good number clears the old error


def test_a_national_number_gets_the_number_meant(make_panel, fresh):
    p = make_panel(to="447700900202", softphone=False)
    home = str(fresh.number)
    p.to.value = "0" + home[2:]  # the lab's own country (44), dialled as a UK user dials it
    assert f"did you mean {home}?" in p.to_hint.value and p.to_hint.value.count("did you mean") == 1
    p.call_button.click()
    assert p.call is None and "Fix the number in To first" in p.error.value  # one line, not the hint again


def test_calling_another_number_swaps_the_softphone(make_panel):
    p = make_panel(to="447700900209")
    old = p.softphone
    p.to.value = "447700900210"
    p.call_button.click()
    assert p.error.value == "", p.error.value
    assert p.softphone is not old and p.softphone.number == "447700900210"
    assert p.children == (p.main, p.softphone) and old.phone.outcome == "answer"
    wait_until(lambda: p.softphone.state.value == "ringing", what="the new softphone to ring")
    p.softphone.reject_button.click()
    wait_until(lambda: p.status.value == "rejected", what="rejected")


def test_controls_without_a_call_say_so_and_reset(make_panel):
    p = make_panel(to="447700900203", softphone=False)
    p.stream_toggle.value = True
    assert "no call yet" in p.error.value
    assert p.stream_toggle.value is False  # the toggle went back
    p.mute_toggle.value = True
    assert p.mute_toggle.value is False
    p.dtmf_keys["#"].click()
    assert "no call yet" in p.error.value


def test_unexpected_errors_show_their_type(make_panel, fresh, monkeypatch):
    fresh.phone("447700900204").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900204", softphone=False)
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(p.call, "say", boom)
    p.say_button.click()
    assert p.error.value.endswith("RuntimeError: boom</span>")
    p.dtmf_keys["1"].click()  # a click that works clears the error line
    assert p.error.value == ""
    p.hangup_button.click()
    wait_until(lambda: p.status.value == "completed", what="completed")
    p.hangup_button.click()
    assert "has ended (completed)" in p.error.value


def test_softphone_reject(make_panel):
    p = make_panel(to="447700900205")
    p.call_button.click()
    wait_until(lambda: p.softphone.state.value == "ringing", what="ringing")
    assert "call from" in p.softphone.caller.value
    p.softphone.reject_button.click()
    assert p.softphone.error.value == "", p.softphone.error.value
    wait_until(lambda: p.status.value == "rejected", what="'rejected' in the status label")
    assert p.softphone.state.value == "idle" and p.softphone.answer_button.disabled
    p.softphone.answer_button.click()  # nothing is ringing any more: an error line, not an exception
    assert "no ringing call" in p.softphone.error.value
    assert p.softphone.dtmf_keys["1"].disabled and p.softphone.say_button.disabled  # no call to press into
    p.call_button.click()  # the next call: nothing of the last one stays on the handset
    wait_until(lambda: p.softphone.state.value == "ringing", what="ringing again")
    assert p.softphone.trace.value == "" and p.softphone.error.value == ""
    assert p.softphone.player.layout.display == "none"
    p.softphone.reject_button.click()


def test_websocket_call_shows_live_audio_and_recording(make_panel, fresh):
    from labkit.lab.ncco import websocket

    phone = fresh.phone("447700900206").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900206", softphone=False, ncco=lambda: [websocket(fresh, rate=16000)])
    before = len(fresh.recordings)
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")
    wait_until(lambda: "WebSocket" in p.waveform.title, what="the waveform to follow the socket")
    phone.say(str(fresh.audio_path("prompt.wav")))
    renders = p.waveform.renders
    wait_until(lambda: p.waveform.renders > renders, what="a redraw from socket frames")
    wait_until(lambda: not phone.speaking, what="the phone to finish speaking")
    p.hangup_button.click()

    def rows() -> list:
        return [c for c in p.recordings_box.children if isinstance(c, widgets.HBox)]

    wait_until(lambda: len(fresh.recordings) > before and len(rows()) == len(fresh.recordings),
               what="the recording to appear in the panel")
    row = rows()[-1]
    assert row.children[0].description.startswith("Play ") and row.children[0].description.endswith(" s")
    assert row.children[1].value.startswith(f"recording {len(fresh.recordings)}: call ")  # words, not "0: 28.0 s"
    row.children[0].click()
    assert p.error.value == "", p.error.value
    assert bytes(p.player.value[:4]) == b"RIFF" and p.player.layout.display is None


def test_panel_follows_an_inbound_call_while_idle(make_panel, fresh):
    while True:  # inbound calls of earlier tests that nobody waited for: not this test's business
        try:
            fresh.wait_for_call(timeout=0)
        except labkit.errors.WaitTimeout:
            break
    p = make_panel(to="447700900207", softphone=False)
    fresh.phone("447700900208")
    uuid = fresh.sandbox.dial("447700900208").uuid
    wait_until(lambda: p.call is not None and p.call.uuid == uuid, what="the panel to take the inbound call")
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.hangup_button.click()
    wait_until(lambda: p.status.value == "completed", what="completed")
    # That call is over: the next wait_for_call() is for the next caller, not this one.
    with pytest.raises(labkit.errors.WaitTimeout):
        fresh.wait_for_call(timeout=0.5)


# -- one click, one call; a trace for every button; errors that go away -------------------------------------
def test_double_click_places_one_call_and_call_is_disabled_while_up(make_panel, fresh):
    fresh.phone("447700900211").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900211", softphone=False)
    before = [c for c in fresh.calls.values() if c.to == "447700900211"]
    p.call_button.click()
    p.call_button.click()  # the second click of a double-click, arriving before the button greyed out
    placed = [c for c in fresh.calls.values() if c.to == "447700900211" and c not in before]
    assert len(placed) == 1 and p.call is placed[0]
    assert p.call_button.disabled and "already up" in p.trace.value and p.error.value == ""
    wait_until(lambda: p.status.value == "answered", what="answered")
    assert p.call_button.disabled
    p.hangup_button.click()
    wait_until(lambda: p.status.value == "completed", what="completed")
    wait_until(lambda: not p.call_button.disabled, what="Call to be enabled again")
    p.call_button.click()  # a new call once the first is over
    assert p.call is not placed[0] and p.error.value == ""
    p.hangup_button.click()


def test_newest_event_is_first_in_a_bottom_anchored_box():
    from labkit.events import EventLog
    from labkit.widgets.lines import events_html

    log = EventLog()
    for i in range(15):
        log.add("event", {"uuid": "u1", "status": f"status-{i:02d}"})
    markup = events_html(list(log), "u1")
    assert "flex-direction:column-reverse" in markup  # the scroll box rests on its newest line
    assert markup.index("status-14") < markup.index("status-13") < markup.index("status-00")


def test_every_panel_button_leaves_a_trace(make_panel, fresh):
    p = make_panel(to="447700900212")
    p.call_button.click()
    assert "placed call" in p.trace.value
    wait_until(lambda: p.softphone.state.value == "ringing", what="ringing")
    p.softphone.answer_button.click()
    assert "answered" in p.softphone.trace.value
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.dtmf_keys["5"].click()
    p.dtmf_keys["#"].click()
    assert "sent key #" in p.trace.value and "5#" in p.trace.value
    p.mute_toggle.value = True
    assert p.mute_toggle.description == "Phone muted" and p.mute_toggle.button_style == "warning"
    assert "phone muted: its voice is cut from the call" in p.trace.value
    p.earmuff_toggle.value = True
    assert p.earmuff_toggle.description == "Phone earmuffed" and "it hears nothing from the call" in p.trace.value
    p.mute_toggle.value = False
    assert p.mute_toggle.description == "Mute phone" and "unmuted" in p.trace.value
    p.say_text.value = "Testing one two"
    p.say_button.click()
    assert "Testing one two" in p.trace.value
    p.softphone.dtmf_keys["7"].click()
    assert "pressed 7" in p.softphone.trace.value
    p.softphone.say_file.value = "prompt.wav"
    p.softphone.say_button.click()
    assert "speaking prompt.wav" in p.softphone.trace.value
    assert p.error.value == "" and p.softphone.error.value == "", (p.error.value, p.softphone.error.value)
    p.hangup_button.click()
    assert "hang-up sent" in p.trace.value
    wait_until(lambda: p.status.value == "completed", what="completed")
    assert p.earmuff_toggle.description == "Earmuff phone"  # reset with the call, label too
    assert all(control.disabled for control in p.call_controls())  # nothing to act on once it ended


def test_errors_speak_the_panels_words_and_clear_when_fixed(make_panel, fresh):
    fresh.phone("447700900213").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900213", softphone=False)
    p.say_button.click()
    assert "no call yet: press Call first." in p.error.value and "attach" not in p.error.value
    p.call_button.click()
    assert p.error.value == ""  # having a call fixes "no call yet"
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.say_text.value = "   "
    p.say_button.click()
    assert "Type what to say in the Say box" in p.error.value and "say()" not in p.error.value
    p.say_text.value = "hello"
    p.say_button.click()
    assert p.error.value == ""
    p.hangup_button.click()


def test_status_line_while_a_cell_waits_and_awaitable_waits(make_panel, fresh):
    import asyncio
    import threading

    from labkit import waits

    fresh.phone("447700900214").set(outcome="answer", answer_after=1.0)
    p = make_panel(to="447700900214", softphone=False)
    p.call_button.click()
    call = p.call
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what a person sees in the panel while the cell blocks
        while not stop.is_set():
            seen.append(p.waiting.value)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        call.wait_for("answered", timeout=20)
    finally:
        stop.set()
        watcher.join()
    assert any(f"waiting for &#x27;answered&#x27; on call {call.uuid[:8]}" in v and "of 20 s" in v for v in seen)
    assert f"got &#x27;answered&#x27; on call {call.uuid[:8]} after" in p.waiting.value and not waits.current()

    async def both():  # the awaitable forms: the event loop stays free while they wait
        completed = asyncio.ensure_future(call.until("completed", timeout=20))
        await asyncio.sleep(0.2)
        assert not completed.done()  # the call is up: nothing can complete this wait yet...
        p.hangup_button.click()  # ...and meanwhile the loop runs other work, here a click
        event = await completed
        first = asyncio.ensure_future(fresh.next_call(timeout=20))
        await asyncio.sleep(0)
        dialled = fresh.sandbox.dial("447700900215").uuid
        inbound = await first
        while inbound.uuid != dialled:  # inbound calls of earlier tests nobody claimed come first
            inbound = await fresh.next_call(timeout=20)
        return event, inbound

    fresh.phone("447700900215")
    event, inbound = asyncio.run(both())
    assert event.status == "completed" and inbound.direction == "inbound" and inbound.uuid
    inbound.wait_for("answered", timeout=20)
    inbound.hangup()


# -- hearing and talking from the browser: the kernel side, driven as the page drives it ---------------------
class _Page:
    """What the page would receive from a CallAudio (its `send` messages) and send back (mic chunks)."""

    def __init__(self, audio):
        self.audio = audio
        self.received: list[tuple[dict, bytes]] = []
        audio.send = lambda content, buffers=None: self.received.append((content, bytes(buffers[0])))

    def heard(self) -> np.ndarray:
        return np.frombuffer(b"".join(b for _c, b in self.received), dtype="<i2")

    def talk(self, samples: np.ndarray, rate: int, chunk_seconds: float = 0.02) -> None:
        """Send `samples` as the page does, in 20 ms pieces, all at once: these tests check where the
        audio goes, so the live-keeping drop is off (`max_mic_queue`); the drop has its own test."""
        self.audio.max_mic_queue = 60.0
        n = int(rate * chunk_seconds)
        for i in range(0, samples.size, n):
            self.audio._on_page_message(self.audio, {"type": "mic", "rate": rate, "t": time.time() * 1000},
                                        [samples[i:i + n].astype("<i2").tobytes()])





def _at_16k(recording):
    from labkit.media import Recording
    from labkit.media.audio import resample

    return Recording(resample(recording.samples, recording.rate, 16000), 16000)


def test_call_audio_as_the_called_phone_hears_its_ears_and_speaks_the_microphone(fresh):
    from labkit import ncco
    from labkit.media import Recording
    from labkit.widgets.call_audio import CallAudio

    a = fresh.phone("447700900221").set(outcome="answer", answer_after=0.1)
    b = fresh.phone("447700900222").set(outcome="answer", answer_after=0.1)
    call_a = fresh.call(a.number, ncco=[ncco.conversation("audio-room")])
    call_b = fresh.call(b.number, ncco=[ncco.conversation("audio-room")])
    call_a.wait_for("answered", timeout=20)
    call_b.wait_for("answered", timeout=20)
    audio = CallAudio(fresh)
    page = _Page(audio)
    try:
        audio.follow(call_a)
        assert audio.rate == 16000 and "447700900221 hears" in audio.source
        audio.listening = True
        b.say(str(fresh.audio_path("prompt.wav")))  # the other person speaks: phone A hears it, so do we
        wait_until(lambda: not b.speaking, what="phone B to finish speaking")
        wait_until(lambda: page.heard().size > 16000, what="call audio sent to the page")
        assert all(c["type"] == "audio" and c["rate"] == 16000 for c, _b in page.received)
        said = Recording("audio/prompt.wav")
        heard = Recording(page.heard(), 16000)
        assert_heard_in_order(heard, said.segment(0.2, 1.9), "the page to get what phone A heard")

        mark = b.position
        mic = _at_16k(said.segment(0.2, 1.9))  # the page sends at the call's rate (its AudioContext's)
        page.talk(np.asarray(mic.samples), mic.rate)  # the microphone speaks as phone A
        assert audio.mic_frames >= int(mic.duration / 0.02) - 1 and audio.error == ""
        wait_until(lambda: not a.speaking, what="phone A to finish speaking the microphone")
        time.sleep(0.2)
        assert_heard_in_order(b.heard_since(mark), mic, "the microphone in what phone B heard")
        assert audio.mic_delay_ms is not None
    finally:
        audio.close()
        for call in (call_a, call_b):
            call.hangup()


def test_call_audio_on_a_websocket_call_hears_the_socket_and_talks_through_the_paced_sender(fresh):
    from labkit import ncco
    from labkit.media import Recording
    from labkit.widgets.call_audio import CallAudio

    phone = fresh.phone("447700900223").set(outcome="answer", answer_after=0.1)
    call = fresh.call(phone.number, ncco=[ncco.websocket(fresh, rate=16000)])
    call.wait_for("answered", timeout=20)
    session = fresh.socket(call)
    audio = CallAudio(fresh)
    page = _Page(audio)
    try:
        audio.follow(call)
        assert "WebSocket" in audio.source and audio.rate == 16000
        audio.listening = True
        phone.say(str(fresh.audio_path("prompt.wav")))
        wait_until(lambda: not phone.speaking, what="the phone to finish speaking")
        wait_until(lambda: page.heard().size > 16000, what="socket audio sent to the page")
        said = Recording("audio/prompt.wav").segment(0.2, 1.9)
        assert_heard_in_order(Recording(page.heard(), 16000), said, "the socket's audio on the page")

        mark = phone.position
        said = _at_16k(said)
        page.talk(np.asarray(said.samples), said.rate)
        wait_until(lambda: session.pacer.queued == 0, what="the paced sender to drain")
        time.sleep(0.2)
        # all-zero ticks out of both (a stall's dry ticks, the prompt's own digital silence): same frame grid
        heard = without_silent_ticks(np.asarray(phone.heard_since(mark).samples), 16000)
        c = Recording(heard, 16000).correlate((without_silent_ticks(np.asarray(said.samples), 16000), 16000))
        assert c > 0.8, f"expected the microphone in what the phone heard (correlation above 0.8), measured {c:.2f}"
    finally:
        audio.close()
        call.hangup()


def test_microphone_audio_beyond_the_queue_limit_is_dropped_to_stay_live(fresh):
    from labkit.media.jitter import FRAME_SECONDS, MAX_TARGET_SECONDS
    from labkit.widgets.call_audio import CallAudio

    phone = fresh.phone("447700900225").set(outcome="answer", answer_after=0.1)
    call = fresh.call(phone.number)
    call.wait_for("answered", timeout=20)
    audio = CallAudio(fresh)
    try:
        audio.follow(call)
        tone = (np.sin(np.arange(320) / 3) * 8000).astype("<i2").tobytes()
        for _ in range(200):  # 4 s of microphone in one burst, as after a stalled kernel
            audio._on_page_message(audio, {"type": "mic", "rate": 16000, "t": time.time() * 1000}, [tone])
        # Kept: what the measured jitter allows to wait (the burst itself measures as jitter, up to its
        # bound) plus a frame; the rest was dropped rather than played seconds late.
        limit = MAX_TARGET_SECONDS + FRAME_SECONDS + 0.005
        kept = audio.mic_frames * 0.02
        assert kept <= limit + 0.02 + 0.2  # + the piece that crossed it + what played meanwhile
        assert audio.mic_frames_dropped >= 200 - audio.mic_frames and audio.mic_frames_dropped > 150
        assert phone.queued_seconds <= limit + 0.02
        assert audio.mic_delay_parts.startswith("capture 10 ms + wire ")
    finally:
        audio.close()
        call.hangup()


def test_panel_has_the_browser_audio_and_it_follows_the_panels_call(make_panel, fresh):
    fresh.phone("447700900224").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900224", softphone=False)
    assert p.audio is not None and p.audio in p.main.children
    p.call_button.click()
    assert p.audio.call is p.call and "447700900224 hears" in p.audio.source
    call = p.call
    p.hangup_button.click()  # the phone may still be ringing: then the call ends 'cancelled', not 'completed'
    wait_until(lambda: call.ended and p.status.value == call.status, what="the call's final status")
    assert p.audio.call is None


# -- controls that tell the truth (issue 22) ----------------------------------------------------------------
def test_controls_that_need_a_call_are_disabled_until_there_is_one(make_panel, fresh):
    fresh.phone("447700900215").set(outcome="answer", answer_after=0.2)
    p = make_panel(to="447700900215", softphone=False)
    assert p.status.value == "no call" and not p.call_button.disabled
    assert all(control.disabled for control in p.call_controls()), [c.description for c in p.call_controls()]
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")
    assert not any(control.disabled for control in p.call_controls()) and p.call_button.disabled
    p.hangup_button.click()
    wait_until(lambda: p.status.value == "completed", what="completed")
    assert all(control.disabled for control in p.call_controls()) and not p.call_button.disabled


def test_a_panel_made_again_during_a_call_takes_it_over_and_hangs_it_up(make_panel, fresh):
    phone = fresh.phone("447700900216")
    phone.set(outcome="answer", answer_after=0.1)
    first = make_panel(to="447700900216", softphone=False)
    first.call_button.click()
    wait_until(lambda: first.status.value == "answered", what="answered")
    second = make_panel(to="447700900216", softphone=False)  # the cell re-run mid-call
    assert second.call is not None and second.call.uuid == first.call.uuid
    assert second.status.value == "answered" and not second.hangup_button.disabled
    assert "took over call" in second.trace.value
    second.hangup_button.click()
    assert second.error.value == "" and "hang-up sent" in second.trace.value
    wait_until(lambda: second.status.value == "completed", what="completed")
    wait_until(lambda: phone.state == "idle", what="the phone to be idle")


def test_a_refusal_never_shows_a_tick(make_panel, fresh):
    fresh.phone("447700900217").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900217", softphone=False)
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.call_button.click()  # a second click that got through before the button was disabled
    assert "already up" in p.trace.value and "&#10003;" not in p.trace.value
    p.say_text.value = "Hello"
    p.say_button.click()
    assert "&#10003;" in p.trace.value  # a Say that worked is ticked ...
    p.say_text.value = ""
    p.say_button.click()
    assert "Type what to say" in p.error.value and p.trace.value == ""  # ... a refused one is not
    p.hangup_button.click()


def test_an_input_error_clears_once_the_input_is_fixed(make_panel, fresh):
    fresh.phone("447700900218").set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900218", softphone=False)
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.stream_loop.value = -2
    p.stream_toggle.value = True
    assert "loop must be a whole number" in p.error.value and not p.stream_toggle.value
    p.stream_loop.value = -1
    assert "loop must be" in p.error.value  # still wrong: the error stays
    p.stream_loop.value = 1
    assert p.error.value == ""  # fixed: the error goes without another click
    p.say_text.value = "  "
    p.say_button.click()
    assert "Type what to say" in p.error.value
    p.say_text.value = "hello"
    assert p.error.value == ""
    p.hangup_button.click()


def test_mute_and_earmuff_do_what_their_labels_say_to_what_the_phone_hears(make_panel, fresh):
    """Earmuff: the phone hears nothing; Mute: the phone still hears the call (its own voice is what is cut)."""
    from support.sandbox import rms

    phone = fresh.phone("447700900219")
    phone.set(outcome="answer", answer_after=0.1)
    p = make_panel(to="447700900219", softphone=False)
    p.call_button.click()
    wait_until(lambda: p.status.value == "answered", what="answered")
    p.stream_loop.value = 0
    p.stream_toggle.value = True

    def heard_for(seconds: float) -> float:
        start = phone.position
        wait_until(lambda: phone.position - start >= seconds * 16000, timeout=10, what="audio")  # 16 kHz heard
        return rms(phone.heard_since(start).samples)

    assert heard_for(1.0) > 500  # the music reaches the phone
    p.earmuff_toggle.value = True
    assert "Phone earmuffed" == p.earmuff_toggle.description
    heard_for(0.2)  # the earmuff takes effect between ticks
    assert heard_for(1.0) < 50, "earmuffed, the phone should hear nothing"
    p.earmuff_toggle.value = False
    p.mute_toggle.value = True
    heard_for(0.2)
    assert heard_for(1.0) > 500, "muted, the phone still hears the call: only its own voice is cut"
    p.hangup_button.click()
