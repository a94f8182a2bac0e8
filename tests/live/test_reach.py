"""A REST stream of a URL the platform cannot fetch is refused before it plays silence, and says why."""

from __future__ import annotations

import socket
import time

import pytest

from labkit import ncco
from labkit.errors import AudioError, InvalidInput
from labkit.live.reach import check_audio_url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def answered(fresh):
    fresh.phone("447700900331").set(outcome="answer", answer_after=0.1)
    call = fresh.call("447700900331", ncco=[ncco.keep_open(fresh)])
    call.wait_for("answered", timeout=10)
    yield fresh, call
    call.hangup()


@pytest.mark.parametrize("path, says", [("/audio/no-such-file.mp3", "HTTP 404"), ("/healthz", "not audio")])
def test_a_bad_stream_url_is_refused_and_shows_in_the_events(answered, path, says):
    lab, call = answered
    url = lab.url(path)
    with pytest.raises(AudioError, match=says):
        call.stream(url)
    refused = [e for e in call.events if e.status == "stream-refused"]
    assert refused and refused[-1].payload["file"] == url and says in refused[-1].payload["reason"]


def test_an_unreachable_host_is_refused_with_what_to_do(answered):
    lab, call = answered
    with pytest.raises(AudioError, match="could not be fetched .*check=False"):
        call.stream(f"http://127.0.0.1:{_closed_port()}/music.mp3")


def test_a_good_url_streams_and_the_phone_hears_it(answered):
    from labkit.media.audio import probe

    lab, call = answered
    phone = lab.phone("447700900331")
    mark = phone.position
    call.stream(lab.url("/audio/prompt.wav"))  # a full URL: checked, then played
    length = probe(lab.audio_path("prompt.wav")).duration
    deadline = time.monotonic() + 30
    while phone.heard_since(mark).duration < length + 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    score = phone.heard_since(mark).correlate(lab.audio_path("prompt.wav"))
    assert score > 0.9, f"the phone heard the streamed URL with correlation {score:.2f}"


def test_live_mode_refuses_addresses_only_this_network_reaches():
    with pytest.raises(InvalidInput, match="only this network can reach"):
        check_audio_url("http://127.0.0.1:9/x.mp3", live=True)
