"""The panel's browser audio on its direct socket to the lab (`/browser-audio`), the kernel side, driven as
the page drives it: a real WebSocket client at the widget's `direct_url`, with a page's Origin."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from support.audio_checks import assert_heard_in_order, without_silent_ticks
from support.waiting import wait_until
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

ORIGIN = "http://127.0.0.1:8888"




class DirectPage:
    """A page on the widget's socket: keeps what it hears, speaks 20 ms pieces in real time."""

    def __init__(self, url: str) -> None:
        self.ws = connect(url, origin=ORIGIN, open_timeout=5)
        self.hello = json.loads(self.ws.recv(5))
        self.heard: list[bytes] = []
        self.rates: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                if isinstance(message, str):
                    rate = json.loads(message).get("rate")
                    if rate:
                        self.rates.add(rate)
                else:
                    self.heard.append(message)
        except Exception:  # noqa: BLE001 - closed
            pass

    def listen(self, on: bool = True) -> None:
        self.ws.send(json.dumps({"listen": on}))

    def heard_samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.heard), dtype="<i2")

    def talk(self, samples: np.ndarray, rate: int) -> None:
        """20 ms pieces, all at once: the shared lab's clock runs at 4x, so pieces in real time would each
        find the call dry (a gap before every one). At most 0.9 s: the socket allows a one-second burst."""
        n = rate // 50
        for i, at in enumerate(range(0, samples.size, n)):
            if i % 10 == 0:
                self.ws.send(json.dumps({"t": time.time() * 1000}))
            self.ws.send(samples[at:at + n].astype("<i2").tobytes())

    def close(self) -> None:
        self.ws.close()


def _prompt_16k():
    from labkit.media import Recording
    from labkit.media.audio import resample

    said = Recording("audio/prompt.wav").segment(0.2, 1.9)
    return Recording(resample(said.samples, said.rate, 16000), 16000)


@pytest.mark.parametrize("source", ["phone", "websocket"])
def test_the_direct_socket_carries_the_call_both_ways(fresh, source):
    """Both sources CallAudio hears: the called virtual phone (its ears, its voice), and a call's WebSocket
    (its frames; the microphone back through its paced sender). None of it goes through the comm."""
    from labkit import ncco
    from labkit.widgets.call_audio import CallAudio

    number = "447700900231" if source == "phone" else "447700900232"
    phone = fresh.phone(number).set(outcome="answer", answer_after=0.1)
    other = None
    if source == "phone":  # two phones in a conversation: we are A, B speaks and hears us
        other = fresh.phone("447700900233").set(outcome="answer", answer_after=0.1)
        calls = [fresh.call(p.number, ncco=[ncco.conversation("direct-room")]) for p in (phone, other)]
        speaker, listener = other, other
    else:
        calls = [fresh.call(number, ncco=[ncco.websocket(fresh, rate=16000)])]
        speaker, listener = phone, phone
    for call in calls:
        call.wait_for("answered", timeout=20)
    audio = CallAudio(fresh)
    comm: list = []
    audio.send = lambda content, buffers=None: comm.append(content)
    page = None
    try:
        if source == "websocket":
            fresh.socket(calls[0])
        audio.follow(calls[0])
        assert audio.direct_url.startswith(f"ws://127.0.0.1:{fresh.port}/browser-audio?token=")
        page = DirectPage(audio.direct_url)
        assert page.hello["event"] == "audio"
        wait_until(lambda: audio._direct is not None, what="the widget to take the socket")
        audio.listening = True  # what the page sets too: the socket, not the comm, carries it while it listens
        page.listen()
        wait_until(lambda: audio._direct.listening, what="the socket to listen")
        time.sleep(0.1)  # a frame the comm's sender took before the socket listened
        comm.clear()
        speaker.say(str(fresh.audio_path("prompt.wav")))
        wait_until(lambda: not speaker.speaking, what="the phone to finish speaking")
        wait_until(lambda: page.heard_samples().size > 16000 * 1.5, what="call audio on the socket")
        from labkit.media import Recording

        said = _prompt_16k()
        assert_heard_in_order(Recording(page.heard_samples(), 16000), said, "the call's audio on the socket")
        assert page.rates == {16000} and not comm  # nothing went through Jupyter

        mark = listener.position
        audio.max_mic_queue = 60.0  # the burst is kept whole (the live-keeping drop has its own test)
        said = said.segment(0.0, 0.9)
        page.talk(np.asarray(said.samples), 16000)
        wait_until(lambda: audio.mic_frames >= int(said.duration / 0.02) - 2, what="the microphone in the call")
        if source == "websocket":
            wait_until(lambda: fresh.socket(calls[0]).pacer.queued == 0, what="the paced sender to drain")
        else:
            wait_until(lambda: not phone.speaking, what="phone A to speak the microphone")
        time.sleep(0.3)
        if source == "websocket":  # all-zero ticks out of both (a stall's dry ticks, the prompt's own silence)
            heard = without_silent_ticks(np.asarray(listener.heard_since(mark).samples), 16000)
            c = Recording(heard, 16000).correlate((without_silent_ticks(np.asarray(said.samples), 16000), 16000))
            assert c > 0.8, (f"expected the microphone in what the phone heard (correlation above 0.8), measured "
                             f"{c:.2f} ({audio.mic_frames_dropped} frames dropped)")
        else:
            assert_heard_in_order(listener.heard_since(mark), said, "the microphone in what the phone heard "
                                  f"({audio.mic_frames_dropped} frames dropped)")
        assert audio.mic_delay_parts.startswith("capture 10 ms + wire ") and audio.error == ""
    finally:
        if page is not None:
            page.close()
        audio.close()
        for call in calls:
            call.hangup()


def test_the_comm_only_way_and_a_closed_widget_open_no_socket(fresh):
    from labkit.widgets.call_audio import CallAudio

    audio = CallAudio(fresh)
    url = audio.direct_url
    page = DirectPage(url)
    wait_until(lambda: audio._direct is not None, what="the socket")
    audio.use_direct(False)  # through Jupyter only: the token is void, its socket closed
    assert audio.direct_url == "" and audio._direct is None
    page._reader.join(5)
    assert not page._reader.is_alive(), "the socket was not closed"
    with pytest.raises(InvalidStatus):
        connect(url, origin=ORIGIN, open_timeout=5)
    audio.use_direct(True)
    assert audio.direct_url and audio.direct_url != url  # a fresh token
    again = audio.direct_url
    audio.close()
    assert audio.direct_url == ""
    with pytest.raises(InvalidStatus):
        connect(again, origin=ORIGIN, open_timeout=5)


def test_lab_stop_closes_the_pages_socket(tmp_path, monkeypatch):
    """lab.stop() leaves nothing of the direct way open or running: the page's socket is closed (the page then
    falls back to the comm and says so), and no thread is left that was not there before."""
    import labkit.config
    from labkit.lab.facade import Lab
    from labkit.widgets.call_audio import CallAudio

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    other = Lab(labkit.config.Settings.load(environ={"LABKIT_MODE": "sandbox"}), quiet=True)
    other._start()
    try:
        audio = CallAudio(other)
        page = DirectPage(audio.direct_url)
        wait_until(lambda: other.browser_audio.open_count == 1, what="the socket")
        threads = {t.name for t in threading.enumerate()}
        other.stop()
        page._reader.join(5)
        assert not page._reader.is_alive(), "lab.stop() left the page's socket open"
        assert other.browser_audio.open_count == 0
        assert not any(t.name.startswith(f"labkit-server:{other.port}") for t in threading.enumerate())
        assert {t.name for t in threading.enumerate()} - threads == set()
        audio.close()
    finally:
        other.stop()
