"""What virtual phones hear and say: talk, stream, REST audio, conferences, DTMF input, recordings, mixer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
import soundfile as sf
from support.sandbox import *  # noqa: F403 - the fixtures: sandbox, receiver, client, test_audio
from support.sandbox import best_correlation, rms, wait_until
from vonage_voice import (
    AudioStreamOptions,
    CreateCallRequest,
    CreateCallResponse,
    Phone,
    Stream,
    Talk,
    ToPhone,
    TtsStreamOptions,
)

from labkit.sandbox.audio.mixer import Player, level_to_gain, mix_naive, mix_others, upsample

RATE = 16000


def read16(path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE
    return data


def tone(freq: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.rint(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def band_power(x: np.ndarray, freq: float) -> float:
    """Share of the signal's energy within 20 Hz of `freq`."""
    x = np.asarray(x, dtype=np.float64)
    if not x.size or not np.any(x):
        return 0.0
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    return float(spec[np.abs(f - freq) < 20].sum() / spec.sum())


def place(client, sandbox, number, ncco):
    """POST /v1/calls with SDK NCCO models or hand-written action dicts (the SDK insists on `from_`)."""
    if all(not isinstance(a, dict) for a in ncco):
        return client.voice.create_call(CreateCallRequest(
            to=[ToPhone(number=number)], from_=Phone(number=sandbox.number), ncco=ncco))
    http = client.voice.http_client
    body = http.post(http.api_host, "/v1/calls", {
        "to": [{"type": "phone", "number": number}], "from": {"type": "phone", "number": sandbox.number},
        "ncco": [a if isinstance(a, dict) else a.model_dump(by_alias=True, exclude_none=True, mode="json")
                 for a in ncco]})
    return CreateCallResponse(**body)


# ---------------------------------------------------------------------------------------------- NCCO audio


def test_talk_then_stream_is_heard_by_the_phone(sandbox, client, receiver, test_audio):
    phone = sandbox.phone("447700900101").set(answer_after=0)
    text = "Here is some music for you"
    created = place(client, sandbox, "447700900101",
                    [Talk(text=text), Stream(streamUrl=[receiver.audio_url("music.wav")])])
    receiver.wait_for("completed", created.uuid, timeout=15)
    heard = phone.heard_in(created.uuid)
    music = read16(test_audio["music.wav"])
    score, lag = best_correlation(heard.samples, music)
    assert score > 0.99  # same rate, unity level: the file arrives sample for sample
    talk_seconds = lag / RATE
    # the talk plays whole (its length is the synthesized speech's); fetching the file may add a moment
    spoken = sandbox._platform.sources.talk(text, RATE).size / RATE
    assert spoken * 0.95 <= talk_seconds <= spoken + 1.5
    assert rms(heard.samples[: int(talk_seconds * RATE)]) > 500  # the talk is audible speech-like sound
    assert heard.duration == pytest.approx(talk_seconds + music.size / RATE, abs=0.2)
    # a different file is not found in it
    assert best_correlation(heard.samples, tone(1234, 1.0))[0] < 0.3


def test_stream_loop_and_level(sandbox, client, receiver, test_audio):
    phone = sandbox.phone("447700900102").set(answer_after=0)
    created = place(client, sandbox, "447700900102",
                    [Stream(streamUrl=[receiver.audio_url("music.wav")], loop=2, level=-0.5)])
    receiver.wait_for("completed", created.uuid, timeout=20)
    heard = phone.heard_in(created.uuid).samples.astype(np.float64)
    music = read16(test_audio["music.wav"]).astype(np.float64)
    # twice the file, plus the moment it took to fetch it (tens of ms, times ten at speed 10)
    assert 2 * music.size <= heard.size <= 2 * music.size + int(1.5 * RATE)
    start = best_correlation(heard[: 3 * RATE], music[: RATE // 2])[1]  # where the first loop starts
    second = heard[start + music.size: start + 2 * music.size]
    assert np.allclose(second, music * level_to_gain(-0.5), atol=1.0)


def test_rest_stream_is_heard_only_between_start_and_stop(sandbox, client, receiver, test_audio):
    phone = sandbox.phone("447700900103").set(answer_after=0)
    created = place(client, sandbox, "447700900103", [Stream(streamUrl=[receiver.audio_url("silence.wav")], loop=0)])
    receiver.wait_for("answered", created.uuid)
    assert wait_until(lambda: phone.position > RATE)  # a second of silence first
    start_before = phone.position
    client.voice.play_audio_into_call(created.uuid, AudioStreamOptions(stream_url=[receiver.audio_url("music.wav")],
                                                                       loop=0))
    start_after = phone.position
    assert wait_until(lambda: phone.position > start_after + 3 * RATE)
    stop_before = phone.position
    client.voice.stop_audio_stream(created.uuid)
    stop_after = phone.position
    assert wait_until(lambda: phone.position > stop_after + 2 * RATE)
    client.voice.hangup(created.uuid)
    heard = phone.heard.samples
    # between *_before and *_after the SDK request was in flight (its RS256 signing alone takes ~50 ms,
    # half a second of call time at speed 10): the stream may start or stop anywhere in there
    assert rms(heard[:start_before]) < 1
    assert rms(heard[start_after + RATE // 4: stop_before]) > 1000
    assert rms(heard[stop_after + 960:]) < 1
    score, lag = best_correlation(heard[start_before: stop_before], read16(test_audio["music.wav"])[: 2 * RATE])
    assert score > 0.99 and start_before + lag <= start_after + RATE  # playing soon after the 200


def test_rest_talk_mixes_over_the_ncco_stream(sandbox, client, receiver, test_audio):
    phone = sandbox.phone("447700900104").set(answer_after=0)
    created = place(client, sandbox, "447700900104", [Stream(streamUrl=[receiver.audio_url("music.wav")], loop=0)])
    receiver.wait_for("answered", created.uuid)
    assert wait_until(lambda: phone.position > RATE // 2)
    before = phone.position
    client.voice.play_tts_into_call(created.uuid, TtsStreamOptions(text="Attention please, attention please"))
    after = phone.position
    assert wait_until(lambda: phone.position > after + 4 * RATE)
    client.voice.hangup(created.uuid)
    heard = phone.heard.samples.astype(np.float64)
    music = read16(test_audio["music.wav"]).astype(np.float64)
    lag = best_correlation(heard[: 3 * RATE], music[: RATE // 2])[1]  # when the NCCO stream started
    expected = np.resize(music, heard.size - lag)
    residue = heard[lag:] - expected  # what is left once the music is taken away: the talk
    assert rms(residue[: before - lag]) < 2  # the music alone until the request
    talk = residue[after - lag: after - lag + 3 * RATE]  # "Attention please, attention please": ~2.4 s
    assert rms(talk) > 300 and np.count_nonzero(np.abs(talk) > 1000) > RATE // 2


# ---------------------------------------------------------------------------------------------- conversations


def test_conference_hold_music_until_the_moderator_joins(sandbox, receiver, test_audio):
    def answer(hook):
        moderator = hook.payload["from"] == "447700900203"
        return [{"action": "conversation", "name": "standup", "startOnEnter": moderator,
                 "musicOnHoldUrl": [receiver.audio_url("hold.wav")]}]

    receiver.answer_ncco = answer
    a, b, c = (sandbox.phone(n) for n in ("447700900201", "447700900202", "447700900203"))
    legs = [sandbox.dial(a.number), sandbox.dial(b.number)]
    for leg in legs:
        leg.wait("answered", 5)
    a.say(tone(440, 1.0))  # nobody hears this: the conference has not started
    assert wait_until(lambda: a.position > 2 * RATE and b.position > 2 * RATE)
    hold = read16(test_audio["hold.wav"])
    for phone in (a, b):
        assert best_correlation(phone.heard.samples, hold[: RATE])[0] > 0.99
    assert band_power(b.heard.samples, 440) < 0.01
    assert legs[0].conversation_uuid == legs[1].conversation_uuid

    legs.append(sandbox.dial(c.number))
    legs[2].wait("answered", 5)
    assert wait_until(lambda: sandbox.platform.named.get("standup") is not None
                      and sandbox.platform.named["standup"].started)
    marks = [p.position for p in (a, b, c)]
    a.say(tone(440, 1.0))
    b.say(tone(660, 1.0))
    assert wait_until(lambda: all(p.position > m + int(1.5 * RATE) for p, m in zip((a, b, c), marks, strict=True)))
    heard = [p.heard_since(m).samples for p, m in zip((a, b, c), marks, strict=True)]
    assert rms(heard[0]) > 100 and band_power(heard[0], 660) > 0.9 and band_power(heard[0], 440) < 0.01
    assert band_power(heard[1], 440) > 0.9 and band_power(heard[1], 660) < 0.01
    assert band_power(heard[2], 440) > 0.3 and band_power(heard[2], 660) > 0.3
    assert best_correlation(heard[2], hold[: RATE // 2])[0] < 0.5  # the hold music stopped
    for phone in (a, b, c):
        phone.hangup()
    for leg in legs:
        assert leg.wait("completed", 5)


def test_mute_and_earmuff_in_a_conference(sandbox, client, receiver):
    receiver.answer_ncco = [{"action": "conversation", "name": "room"}]
    a, b = sandbox.phone("447700900211"), sandbox.phone("447700900212")
    la, lb = sandbox.dial(a.number), sandbox.dial(b.number)
    la.wait("answered", 5)
    lb.wait("answered", 5)
    client.voice.mute(la.uuid)
    mark = b.position
    a.say(tone(500, 0.5))
    assert wait_until(lambda: b.position > mark + RATE)
    assert rms(b.heard_since(mark).samples) < 1
    client.voice.unmute(la.uuid)
    client.voice.earmuff(lb.uuid)
    mark = b.position
    a.say(tone(500, 0.5))
    assert wait_until(lambda: b.position > mark + RATE)
    assert rms(b.heard_since(mark).samples) < 1
    client.voice.unearmuff(lb.uuid)
    mark = b.position
    a.say(tone(500, 0.5))
    assert wait_until(lambda: b.position > mark + RATE)
    assert band_power(b.heard_since(mark).samples, 500) > 0.9
    a.hangup()
    b.hangup()


def test_connect_to_another_phone(sandbox, client, receiver):
    callee = sandbox.phone("447700900221").set(answer_after=0.5)
    caller = sandbox.phone("447700900222").set(answer_after=0)
    created = place(client, sandbox, caller.number, [
        {"action": "connect", "from": sandbox.number, "eventUrl": [receiver.url + "/connect-events"],
         "endpoint": [{"type": "phone", "number": callee.number}]},
        {"action": "talk", "text": "The other party hung up"},
    ])
    hook = receiver.wait_for("answered", path="/connect-events")
    child = sandbox.call(hook.payload["uuid"])
    assert child.conversation_uuid == sandbox.call(created.uuid).conversation_uuid
    mark = callee.position
    caller.say(tone(700, 0.5))
    assert wait_until(lambda: callee.position > mark + RATE)
    assert band_power(callee.heard_since(mark).samples, 700) > 0.9
    callee.hangup()
    receiver.wait_for("completed", created.uuid)
    statuses = [h.kind for h in receiver.find(path="/connect-events")]
    assert statuses == ["started", "ringing", "answered", "completed"]
    # the talk after the connect ran, and the caller heard it where the sandbox says it played it (not "the
    # last 0.5 s": at speed 10 a 50 ms stall of a busy machine leaves 0.5 s of call after it)
    talk = next(p for p in sandbox.call(created.uuid).played if p.get("text") == "The other party hung up")
    start = int(talk["at"] * RATE)
    assert rms(caller.heard_in(created.uuid).samples[start: start + int(talk["seconds"] * RATE)]) > 100


# ---------------------------------------------------------------------------------------------- DTMF input


def input_call(sandbox, client, receiver, number, dtmf, *, before=()):
    phone = sandbox.phone(number).set(answer_after=0)
    created = place(client, sandbox, number, [*before, {"action": "input", "type": ["dtmf"], "dtmf": dtmf,
                                                        "eventUrl": [receiver.url + "/input"]}])
    receiver.wait_for("answered", created.uuid)
    leg = sandbox.call(created.uuid)
    return phone, created, leg


def test_input_collects_digits_and_its_reply_replaces_the_ncco(sandbox, client, receiver):
    receiver.replies["input"] = lambda hook: [
        {"action": "talk", "text": f"You pressed {hook.payload['dtmf']['digits']}"}]
    phone, created, leg = input_call(sandbox, client, receiver, "447700900301", {"maxDigits": 3})
    assert wait_until(lambda: leg.input is not None)
    phone.press("123")
    hook = receiver.wait_for("input", created.uuid, path="/input")
    assert hook.payload["dtmf"] == {"digits": "123", "timed_out": False}
    assert hook.payload["uuid"] == created.uuid and hook.payload["conversation_uuid"] == created.conversation_uuid
    receiver.wait_for("completed", created.uuid)
    assert phone.heard_in(created.uuid).duration > len("You pressed 123") * 0.07  # the reply NCCO ran


def test_input_submit_on_hash_and_timeouts(sandbox, client, receiver):
    # timeOut 10 s of call time (1 s real at speed 10): the keys must come before the input times out, and a
    # busy machine has delivered 'answered' here after a shorter input had already ended
    phone, created, leg = input_call(sandbox, client, receiver, "447700900302",
                                     {"maxDigits": 10, "submitOnHash": True, "timeOut": 10})
    assert wait_until(lambda: leg.input is not None)
    phone.press("42#")
    assert receiver.wait_for("input", created.uuid).payload["dtmf"] == {"digits": "42", "timed_out": False}

    phone, created, leg = input_call(sandbox, client, receiver, "447700900303", {"maxDigits": 4, "timeOut": 10})
    assert wait_until(lambda: leg.input is not None)
    phone.press("7")
    assert receiver.wait_for("input", created.uuid).payload["dtmf"] == {"digits": "7", "timed_out": True}

    phone, created, leg = input_call(sandbox, client, receiver, "447700900304", {"timeOut": 2})
    hook = receiver.wait_for("input", created.uuid)
    waited = sandbox.clock.ticks - leg.answered_tick  # in 20 ms ticks of call time
    assert hook.payload["dtmf"] == {"digits": "", "timed_out": True}
    assert 100 <= waited <= 200  # timeOut 2 s = 100 ticks (plus the webhook's way here)


def test_barge_in_stops_the_prompt_and_feeds_the_input(sandbox, client, receiver):
    long_text = "Please listen carefully as our menu options have changed. " * 3
    phone, created, leg = input_call(sandbox, client, receiver, "447700900305", {"maxDigits": 1},
                                     before=[{"action": "talk", "text": long_text, "bargeIn": True}])
    assert wait_until(lambda: leg.barge and phone.position > RATE)  # the prompt is playing
    phone.press("5")
    hook = receiver.wait_for("input", created.uuid)
    assert hook.payload["dtmf"]["digits"] == "5"
    receiver.wait_for("completed", created.uuid)
    assert phone.heard_in(created.uuid).duration < len(long_text) * 0.07 / 2


def test_speech_input_reports_what_the_phone_said(sandbox, client, receiver):
    phone = sandbox.phone("447700900306").set(answer_after=0)
    created = place(client, sandbox, phone.number, [
        {"action": "input", "type": ["speech"], "speech": {"endOnSilence": 1, "startTimeout": 5}}])
    receiver.wait_for("answered", created.uuid)
    leg = sandbox.call(created.uuid)
    assert wait_until(lambda: leg.input is not None)
    phone.say(text="I would like to pay my bill")
    hook = receiver.wait_for("input", created.uuid, timeout=5)
    assert hook.payload["speech"]["results"][0]["text"] == "I would like to pay my bill"
    assert hook.payload["speech"]["timeout_reason"] == "end_on_silence_timeout"


# ---------------------------------------------------------------------------------------------- recording


def test_record_action_records_what_the_call_hears_and_says(sandbox, client, receiver, test_audio):
    phone = sandbox.phone("447700900401").set(answer_after=0)
    created = place(client, sandbox, phone.number, [
        {"action": "record", "format": "wav", "eventUrl": [receiver.url + "/recording"]},
        {"action": "stream", "streamUrl": [receiver.audio_url("music.wav")]},
    ])
    receiver.wait_for("answered", created.uuid)
    phone.say(tone(3000, 1.0, level=0.1))
    hook = receiver.wait_for("record", path="/recording", timeout=20)
    p = hook.payload
    assert p["conversation_uuid"] == created.conversation_uuid
    assert p["start_time"].endswith("Z") and p["end_time"] >= p["start_time"]
    token = client.voice.http_client.auth.create_jwt_auth_string()
    got = requests.get(p["recording_url"], headers={"Authorization": token}, verify=str(sandbox.ca_bundle), timeout=5)
    audio, rate = sf.read(io.BytesIO(got.content), dtype="int16")
    assert rate == RATE and len(got.content) == p["size"]
    assert best_correlation(audio, read16(test_audio["music.wav"])[RATE * 2: RATE * 3])[0] > 0.95
    assert band_power(audio[: 2 * RATE], 3000) > 0.05  # what the phone said is in it too


def test_record_end_on_key_and_mp3_default(sandbox, client, receiver):
    phone = sandbox.phone("447700900402").set(answer_after=0)
    created = place(client, sandbox, phone.number, [
        {"action": "record", "endOnKey": "#", "eventUrl": [receiver.url + "/recording"]},
        {"action": "stream", "streamUrl": [receiver.audio_url("silence.wav")], "loop": 0},
    ])
    receiver.wait_for("answered", created.uuid)
    phone.say(tone(440, 1.0))
    assert wait_until(lambda: phone.position > 2 * RATE)
    phone.press("#")
    hook = receiver.wait_for("record", path="/recording", timeout=10)
    assert sandbox.call(created.uuid).status == "answered"  # recording ended, the call goes on
    file_id = hook.payload["recording_url"].rsplit("/", 1)[1]
    path = sandbox.recordings[file_id]
    assert path.suffix == ".mp3"
    info = sf.info(str(path))
    assert 1.5 < info.duration < 3.5
    client.voice.hangup(created.uuid)


# ---------------------------------------------------------------------------------------------- mixer units


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_upsample_then_decimate_is_exact(rate):
    rng = np.random.default_rng(rate)
    x = rng.integers(-32768, 32767, rate // 50).astype(np.float32)
    L = 48000 // rate
    y = upsample(x, L)
    assert y.size == x.size * L and np.array_equal(y[::L], x)
    assert np.all(np.abs(np.diff(y[:L * 4])) <= np.abs(np.diff(x[:5])).max() + 1)


def test_mix_others_matches_the_naive_mixer():
    rng = np.random.default_rng(1)
    speech = [rng.normal(0, 1000, 960).astype(np.float32) if i % 3 else None for i in range(12)]
    factors = [3, 2, 6, 3] * 3
    fast = mix_others(speech, factors, [True] * 12)
    slow = mix_naive(speech, factors)
    for f, s in zip(fast, slow, strict=True):
        assert f is not None and np.allclose(f, s, atol=0.01)
    allowed = [[i != j and (i + j) % 2 == 0 for j in range(12)] for i in range(12)]
    masked = mix_others(speech, factors, [True] * 12, allowed)
    expect = np.add.reduce([speech[i] for i in range(12) if speech[i] is not None and allowed[i][4]])
    assert np.allclose(masked[4], expect[::3], atol=0.01)


def test_player_loops_and_levels():
    p = Player(np.arange(1, 6, dtype=np.int16), loop=2, gain=level_to_gain(0))
    out = [p.read(3) for _ in range(5)]
    assert np.array_equal(np.concatenate(out[:4]), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 0, 0])
    assert p.done and out[4] is None
    forever = Player(np.ones(4, dtype=np.int16), loop=0, gain=level_to_gain(1))
    assert all(np.array_equal(forever.read(3), [2, 2, 2]) for _ in range(100)) and not forever.done
    forever.stop()
    assert forever.read(3) is None
    assert level_to_gain(-1) == 0.0 and level_to_gain("0") == 1.0 and level_to_gain(0.5) == 1.5


def test_recorded_conversation_ends_when_the_moderator_leaves(sandbox, receiver):
    def answer(hook):
        host = hook.payload["from"] == "447700900601"
        return [{"action": "conversation", "name": "recorded", "endOnExit": host, "record": host,
                 "eventUrl": [receiver.url + "/conf-events"]},
                {"action": "talk", "text": "The meeting has ended"}]

    receiver.answer_ncco = answer
    host, guest = sandbox.phone("447700900601"), sandbox.phone("447700900602")
    host_leg = sandbox.dial(host.number)
    host_leg.wait("answered", 5)
    guest_leg = sandbox.dial(guest.number)
    guest_leg.wait("answered", 5)
    assert wait_until(lambda: len(sandbox.platform.named["recorded"].legs) == 2)
    guest.say(tone(880, 1.0))
    assert wait_until(lambda: not guest.speaking and host.position > 16000)
    mark = guest.position
    host.hangup()
    hook = receiver.wait_for("record", path="/conf-events", timeout=10)
    receiver.wait_for("completed", guest_leg.uuid)
    assert rms(guest.heard_since(mark).samples) > 500  # the guest's NCCO went on: the closing talk
    path = sandbox.recording_path(hook.payload["recording_url"])
    audio, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE and band_power(audio, 880) > 0.5


def test_heard_audio_windows_match_the_whole_history():
    """A phone's history is kept in sealed blocks; every window cut from it equals the plain concatenation."""
    from labkit.sandbox.audio.heard_audio import HeardAudio

    heard, frames = HeardAudio(), []
    rng = np.random.default_rng(0)
    for _ in range(1234):
        frame = rng.integers(-1000, 1000, 320).astype(np.int16)
        heard.append(frame)
        frames.append(frame)
    whole = np.concatenate(frames)
    assert heard.sealed == 2 and len(heard.chunks) < 300
    for start, end in [(0, whole.size), (5, 17), (320 * 499, 320 * 501 + 7), (whole.size - 100, whole.size + 50),
                       (160000, 160001), (10, 5)]:
        np.testing.assert_array_equal(heard.range(start, end), whole[max(0, start):min(end, whole.size)])


def test_talk_speaks_real_words_the_same_every_time(monkeypatch):
    """Real speech by default (espeak-ng from its wheel), identical samples for the same text whatever
    was said before it; LABKIT_SANDBOX_TTS=babble gives the babble."""
    from labkit.sandbox.audio import tts
    from labkit.sandbox.audio.sources import AudioSources, babble

    if not tts.available():
        pytest.skip("no espeakng-loader wheel for this platform: the sandbox speaks its babble")
    first = tts.speak("Hello from the lab", 16000)
    tts.speak("Something else entirely, to move espeak's internal state on", 16000)
    again = AudioSources().talk("Hello from the lab", 16000)
    np.testing.assert_array_equal(first, again)
    assert 0.5 < first.size / 16000 < 3
    assert not np.array_equal(first[:8000], babble("Hello from the lab", 16000)[:8000])
    # speech, not a tone: energy comes and goes with the syllables, and most of it is below 4 kHz
    frames = first[: first.size // 320 * 320].reshape(-1, 320).astype(float)
    loudness = np.sqrt((frames ** 2).mean(axis=1))
    assert (loudness > 500).sum() > 20 and loudness.max() > 10 * np.percentile(loudness, 10)
    spectrum = np.abs(np.fft.rfft(first.astype(float)))
    assert spectrum[: len(spectrum) // 2].sum() > 0.8 * spectrum.sum()
    # the same in a fresh process: deterministic across runs, not only within one
    import subprocess
    import sys

    code = ("import hashlib; from labkit.sandbox.audio import tts; "
            "print(hashlib.sha256(tts.speak('Hello from the lab', 16000).tobytes()).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    import hashlib

    assert other.stdout.strip() == hashlib.sha256(first.tobytes()).hexdigest()
    monkeypatch.setenv("LABKIT_SANDBOX_TTS", "babble")
    np.testing.assert_array_equal(AudioSources().talk("Hello from the lab", 16000), babble("Hello from the lab", 16000))


def test_the_audio_cache_is_bounded_in_bytes_least_recently_used_first():
    import numpy as np

    from labkit.sandbox.audio.sources import AudioSources

    src = AudioSources(max_bytes=1_000_000)
    blocks = {n: np.full(100_000, n, dtype=np.int16) for n in range(12)}  # 200 kB each
    with src._lock:
        for n in range(4):
            src._remember(src._decoded, (f"u{n}", 16000), blocks[n])
        src._touch(src._decoded, ("u0", 16000))  # u0 used again: u1 is now the oldest
        for n in range(4, 8):
            src._remember(src._decoded, (f"u{n}", 16000), blocks[n])
        src._remember(src._files, "huge", b"x" * 2_000_000)  # bigger than the whole bound: not kept
    assert src.cached_bytes <= 1_000_000
    assert src.cached_bytes == sum(v.nbytes for v in src._decoded.values())
    assert ("u0", 16000) in src._decoded and ("u1", 16000) not in src._decoded and "huge" not in src._files
    talk = src.talk("hello " * 200, 16000)
    assert src.cached_bytes <= 1_000_000 and talk.size


def test_a_phones_heard_audio_spills_to_disk_and_reads_back_whole(tmp_path, monkeypatch):
    import numpy as np

    from labkit.sandbox.audio.heard_audio import HeardAudio

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    heard = HeardAudio(memory_seconds=20)  # two 10 s blocks in memory
    frames = 50 * 100  # 100 s of 20 ms frames at 16 kHz
    for i in range(frames):
        heard.append(np.full(320, i % 30000, dtype=np.int16))
    assert heard.spilled >= 7 and heard.memory_bytes <= 3 * 10 * 16000 * 2
    everything = heard.range(0, heard.length)
    assert everything.size == frames * 320
    assert np.array_equal(everything[::320], np.arange(frames) % 30000)  # every frame, in order
    window = heard.range(5 * 320 + 7, 4000 * 320 + 11)  # across spilled and in-memory blocks
    assert np.array_equal(window, everything[5 * 320 + 7:4000 * 320 + 11])
    heard.close()
