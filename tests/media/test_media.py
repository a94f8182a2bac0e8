"""labkit.media: decoding, framing, pacing, crash-safe recording and the Recording object."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import soundfile as sf
from support.processes import kill_while_writing

from labkit.errors import AudioError, InvalidInput, SocketError
from labkit.media import audio, frames, plots
from labkit.media.audio import as_int16, load, probe, resample, silence, tone
from labkit.media.frames import (
    content_type,
    frame_bytes,
    frame_samples,
    from_frames,
    parse_content_type,
    to_frames,
)
from labkit.media.pacer import PacedSender, PacingStats
from labkit.media.recorder import WavRecorder
from labkit.media.recording import Recording

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO / "audio"


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / samples.size)


def read_wave(path: Path) -> tuple[np.ndarray, int]:
    """Read with Python's own wave module: the strictest reader of WAV headers around."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16), w.getframerate()


# ------------------------------------------------------------------------------------------ load


@pytest.mark.parametrize("name", ["music", "prompt", "silence"])
def test_committed_samples_load_as_int16_mono_at_16k(name: str) -> None:
    wav = load(AUDIO / f"{name}.wav", 16000)
    mp3 = load(AUDIO / f"{name}.mp3", 16000)
    for x in (wav, mp3):
        assert x.dtype == np.int16 and x.ndim == 1
    assert abs(mp3.size - wav.size) <= 0.01 * wav.size
    if name == "silence":
        assert not wav.any()
        assert np.abs(mp3).max() < 50
    else:
        assert Recording(mp3, 16000).correlate((wav, 16000)) > 0.95


def test_committed_files_are_small_and_playable() -> None:
    names = ["music.wav", "music.mp3", "prompt.wav", "prompt.mp3", "silence.wav", "silence.mp3", "beep.wav"]
    for name in names:
        info = probe(AUDIO / name)
        assert info.playable, info
        assert (info.rate, info.channels) == (16000, 1)
        assert (AUDIO / name).stat().st_size < 200_000
    beep = load(AUDIO / "beep.wav", 16000)
    assert abs(dominant_hz(beep, 16000) - 1000) < 10


def test_stereo_44k_wav_is_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, left], axis=1), 44100, subtype="PCM_16")
    x = load(path, 16000)
    assert x.dtype == np.int16 and x.shape == (16000,)
    assert abs(dominant_hz(x, 16000) - 440) < 2
    assert 0.3 < np.abs(x).max() / 32767 < 0.55

    # Opposite channels cancel: proves a real mix rather than "take the left channel".
    sf.write(path, np.stack([left, -left], axis=1), 44100, subtype="PCM_16")
    assert np.abs(load(path, 16000)).max() <= 2


def test_mp3_file_stereo_decodes_and_resamples(tmp_path: Path) -> None:
    t = np.arange(2 * 44100) / 44100
    sig = 0.4 * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / "tone.mp3"
    sf.write(path, np.stack([sig, sig], axis=1), 44100, format="MP3", bitrate_mode="CONSTANT")
    x = load(path, 8000)
    assert x.dtype == np.int16 and abs(x.size - 16000) < 160
    assert abs(dominant_hz(x, 8000) - 1000) < 5


def test_bytes_tuple_and_recording_like_sources(tmp_path: Path) -> None:
    from_path = load(AUDIO / "prompt.wav", 16000)
    assert np.array_equal(load((AUDIO / "prompt.wav").read_bytes(), 16000), from_path)
    assert np.array_equal(load(bytearray((AUDIO / "prompt.wav").read_bytes()), 16000), from_path)
    assert np.array_equal(load(str(AUDIO / "prompt.wav"), 16000), from_path)

    ints = tone(300, 0.5, 8000)
    assert np.array_equal(load((ints, 8000), 8000), ints)
    floats = ints / 32767.0
    assert np.abs(load((floats, 8000), 8000).astype(int) - ints).max() <= 1
    up = load((ints, 8000), 16000)
    assert up.size == 2 * ints.size and abs(dominant_hz(up, 16000) - 300) < 3
    assert np.array_equal(load(SimpleNamespace(samples=ints, rate=8000), 8000), ints)
    assert load(Recording(ints, 8000), 24000).size == 3 * ints.size


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nope.wav.*does not exist"):
        load(tmp_path / "nope.wav", 16000)
    with pytest.raises(AudioError, match="URL"):
        load("https://example.invalid/a.mp3", 16000)


@pytest.mark.parametrize(
    ("filename", "writer", "words"),
    [
        ("notes.flac", lambda p: p.write_text("this is not audio"), "MP3 or 16-bit PCM WAV"),
        ("loop.ogg", lambda p: sf.write(p, np.zeros(1600), 16000, format="OGG", subtype="VORBIS"), "OGG"),
        ("deep.wav", lambda p: sf.write(p, np.zeros(1600), 16000, subtype="PCM_24"), "24-bit"),
        ("float.wav", lambda p: sf.write(p, np.zeros(1600), 16000, subtype="FLOAT"), "32-bit float"),
    ],
)
def test_unsupported_files_raise_with_the_name_and_what_works(tmp_path: Path, filename, writer, words) -> None:
    path = tmp_path / filename
    writer(path)
    with pytest.raises(AudioError) as err:
        load(path, 16000)
    assert filename in str(err.value)
    assert words in str(err.value)
    assert "WAV" in str(err.value)
    info = probe(path)
    assert not info.playable and words.split()[0] in info.reason


def test_garbage_and_empty_bytes_raise_audio_error() -> None:
    with pytest.raises(AudioError, match="MP3 or 16-bit PCM WAV"):
        load(b"\x00\x01garbage" * 100, 16000)
    with pytest.raises(AudioError, match="empty"):
        load(b"", 16000)


def test_bad_arguments_raise_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="sample rate"):
        load(np.zeros(10, dtype=np.int16), 16000)
    with pytest.raises(InvalidInput, match="rate"):
        load(AUDIO / "beep.wav", 0)
    with pytest.raises(InvalidInput):
        load(12345, 16000)
    with pytest.raises(InvalidInput, match="int16 range"):
        as_int16(np.array([70000], dtype=np.int32))


def test_8bit_and_ulaw_wavs_are_accepted_like_the_platform(tmp_path: Path) -> None:
    src = tone(500, 0.2, 8000, level=0.5)
    for subtype in ("PCM_U8", "ULAW"):
        path = tmp_path / f"{subtype}.wav"
        sf.write(path, src, 8000, subtype=subtype)
        assert probe(path).playable
        x = load(path, 8000)
        assert x.size == src.size and np.abs(x.astype(int) - src).max() < 1200


# ------------------------------------------------------------------------------------- resample


@pytest.mark.parametrize(("a", "b"), [(8000, 16000), (16000, 8000), (44100, 16000), (48000, 24000), (16000, 24000)])
def test_resample_lengths_and_frequency(a: int, b: int) -> None:
    x = tone(440, 1.0, a)
    y = resample(x, a, b)
    assert y.dtype == np.int16 and y.size == b
    assert abs(dominant_hz(y, b) - 440) < 2


@pytest.mark.parametrize(("a", "b"), [(22050, 16000), (22050, 8000), (22050, 24000), (44100, 16000), (48000, 16000),
                                    (8000, 16000), (16000, 8000), (16000, 24000), (24000, 16000), (16000, 48000)])
@pytest.mark.parametrize("n", [1, 7, 441, 22050 * 2 + 3])
def test_resample_gives_scipys_samples_without_scipy(a: int, b: int, n: int) -> None:
    """The sandbox resamples every talk (espeak-ng speaks at 22.05 kHz) without loading scipy's 69 MB,
    and gets the samples scipy.signal.resample_poly gives, mono and stereo."""
    from scipy.signal import resample_poly

    from labkit.media.polyphase import resample_poly as numpy_poly

    g = np.gcd(a, b)
    x = np.random.default_rng(n).uniform(-30000, 30000, (n, 2))
    want = resample_poly(x, b // g, a // g, axis=0)
    got = numpy_poly(x, b // g, a // g)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(numpy_poly(x[:, 0], b // g, a // g) - want[:, 0]).max() < 1e-6


def test_resample_keeps_float_dtype_identity_and_clips() -> None:
    x = tone(440, 0.1, 16000)
    assert resample(x, 16000, 16000) is x
    f = (x / 32768).astype(np.float32)
    assert resample(f, 16000, 8000).dtype == np.float32
    # A full-scale square wave overshoots when filtered: it must clip, not wrap to negative.
    square = np.repeat(np.array([32767, -32768] * 20, dtype=np.int16), 200)
    up = resample(square, 16000, 24000)
    assert up.max() == 32767 and up.min() == -32768
    # 200-sample blocks become 300: the middle of the first + block stays +, of the - block stays -.
    assert (up[100:200] > 30000).all() and (up[400:500] < -30000).all()
    assert resample(np.zeros(0, dtype=np.int16), 16000, 8000).size == 0


def test_tone_and_silence() -> None:
    t = tone(1000, 0.5, 16000, level=0.25)
    assert t.dtype == np.int16 and t.size == 8000
    assert abs(np.abs(t).max() - 0.25 * 32767) <= 1
    assert abs(dominant_hz(t, 16000) - 1000) < 3
    s = silence(2, 8000)
    assert s.dtype == np.int16 and s.size == 16000 and not s.any()
    with pytest.raises(InvalidInput):
        tone(5000, 1, 8000)


def test_probe_reports_format_and_reasons(tmp_path: Path) -> None:
    info = probe(AUDIO / "music.mp3")
    assert (info.format, info.subtype, info.playable, info.reason) == ("MP3", "MPEG_LAYER_III", True, "")
    assert 5.9 < info.duration < 6.1
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(os.urandom(2000))
    bad = probe(garbage)
    assert not bad.playable and bad.format == "unknown" and "MP3" in bad.reason
    with pytest.raises(AudioError, match="does not exist"):
        probe(tmp_path / "missing.mp3")
    assert "ok" in str(info)


# ---------------------------------------------------------------------------------------- frames


def test_frame_sizes_and_content_types() -> None:
    assert [frame_bytes(r) for r in frames.RATES] == [320, 640, 960]
    assert [frame_samples(r) for r in frames.RATES] == [160, 320, 480]
    assert content_type(16000) == "audio/l16;rate=16000"
    with pytest.raises(InvalidInput, match="8000, 16000, 24000"):
        frame_bytes(44100)


@pytest.mark.parametrize(
    "text", ["audio/l16;rate=16000", "Audio/L16; rate=16000", "  AUDIO/l16 ; Rate = 16000 ", "audio/L16;RATE=16000"]
)
def test_parse_content_type_is_tolerant(text: str) -> None:
    assert parse_content_type(text) == 16000


@pytest.mark.parametrize("text", ["audio/l16;rate=44100", "audio/pcm;rate=16000", "audio/l16", "", None, 16000])
def test_parse_content_type_rejects_others_naming_allowed(text: object) -> None:
    with pytest.raises(SocketError, match="audio/l16;rate=8000, audio/l16;rate=16000, audio/l16;rate=24000"):
        parse_content_type(text)


@pytest.mark.parametrize("rate", frames.RATES)
def test_frames_round_trip_and_padding(rate: int) -> None:
    x = tone(440, 0.105, rate)  # not a whole number of frames
    fr = to_frames(x, rate)
    assert len(fr) == -(-x.size // frame_samples(rate))
    assert all(len(f) == frame_bytes(rate) for f in fr)
    back = from_frames(fr)
    assert back.dtype == np.int16
    assert np.array_equal(back[: x.size], x) and not back[x.size :].any()
    assert to_frames(np.zeros(0, dtype=np.int16), rate) == []


def test_frames_are_little_endian_and_reject_odd_bytes() -> None:
    fr = to_frames(np.array([1, -2], dtype=np.int16), 8000)
    assert fr[0][:4] == b"\x01\x00\xfe\xff"
    assert from_frames([b"\x01\x00", bytearray(b"\x02\x00")]).tolist() == [1, 2]
    with pytest.raises(SocketError, match="odd"):
        from_frames([b"\x01\x00\x02"])


# ----------------------------------------------------------------------------------------- pacer


class Sink:
    """A send() that records frames and when they arrived."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.times: list[float] = []

    def __call__(self, frame: bytes) -> None:
        self.times.append(time.monotonic())
        self.frames.append(frame)


@pytest.mark.parametrize("rate", frames.RATES)
def test_pacer_sends_exact_frames_in_order(rate: int) -> None:
    sink = Sink()
    x = tone(440, 0.3, rate)
    with PacedSender(sink, rate, prebuffer_frames=0) as pacer:
        handle = pacer.play(x)
        assert handle.frames_total == 15
        assert handle.wait(5) and handle.ok
    assert sink.frames == to_frames(x, rate)
    # 14 gaps of 20 ms; a burst would take ~0 s (upper bounds are left out: CI machines are slow)
    assert sink.times[-1] - sink.times[0] > 0.2


def test_pacer_plays_queue_in_order_with_echo_and_paths() -> None:
    sink = Sink()
    a, b = tone(300, 0.1, 16000), tone(600, 0.06, 16000)
    echo = b"\x07\x00" * 320
    with PacedSender(sink, 16000, prebuffer_frames=0) as pacer:  # paced from the first frame
        ha = pacer.play(a)
        assert pacer.echo(echo)
        hb = pacer.play(b.astype(np.float32) / 32767, rate=16000)
        hc = pacer.play(AUDIO / "beep.wav")
        assert pacer.queued >= 1 + 3 + 13 - 2
        assert hc.wait(5) and ha.ok and hb.ok
        assert pacer.stats.frames_sent == 5 + 1 + 3 + 13
        with pytest.raises(SocketError, match="640 bytes"):
            pacer.echo(b"\x00" * 100)
        with pytest.raises(InvalidInput, match="rate="):
            pacer.play(AUDIO / "beep.wav", rate=8000)
    expected = to_frames(a, 16000) + [echo] + to_frames(load((b, 16000), 16000), 16000)
    assert sink.frames[:9] == expected
    assert sink.frames[9:] == to_frames(load(AUDIO / "beep.wav", 16000), 16000)


def test_pacer_clear_drops_queued_audio() -> None:
    sink = Sink()
    with PacedSender(sink, 16000) as pacer:
        handle = pacer.play(silence(120, 16000))  # 6000 frames: more than the platform buffers
        assert pacer.queued > pacer.max_queued_frames
        while not sink.frames:
            time.sleep(0.005)
        dropped = pacer.clear()
        assert dropped > 5900 and pacer.queued == 0
        assert handle.done.is_set() and handle.cancelled and not handle.ok
        count = len(sink.frames)
        time.sleep(0.1)
        assert len(sink.frames) <= count + 1  # at most the frame already in flight
        again = pacer.play(tone(440, 0.04, 16000))
        assert again.wait(5) and again.ok
        other = pacer.play(silence(10, 16000))
        assert other.cancel() > 400 and other.cancelled


def test_pacer_close_stops_thread_and_is_idempotent() -> None:
    sink = Sink()
    pacer = PacedSender(sink, 8000)
    handle = pacer.play(silence(5, 8000))
    time.sleep(0.05)
    pacer.close()
    assert not pacer.running
    assert handle.done.is_set() and handle.cancelled
    pacer.close()
    with pytest.raises(SocketError, match="closed"):
        pacer.play(silence(1, 8000))
    count = len(sink.frames)
    time.sleep(0.06)
    assert len(sink.frames) == count


def test_pacer_stops_cleanly_when_send_raises() -> None:
    calls = []
    both_queued = threading.Event()

    def send(frame: bytes) -> None:
        both_queued.wait(5)  # no send before both plays are queued, however fast the pacer starts
        calls.append(frame)
        if len(calls) == 3:
            raise ConnectionResetError("socket closed")

    pacer = PacedSender(send, 16000)
    first = pacer.play(silence(0.2, 16000))
    second = pacer.play(silence(0.2, 16000))
    both_queued.set()
    assert first.wait(5) and second.wait(5)
    assert isinstance(first.error, ConnectionResetError) and second.error is first.error
    assert isinstance(pacer.error, ConnectionResetError)
    pacer._thread.join(2)
    assert not pacer.running
    time.sleep(0.06)
    assert len(calls) == 3  # no retry loop, no spinning
    with pytest.raises(SocketError, match="sending failed"):
        pacer.play(silence(0.1, 16000))
    pacer.close()


def test_pacer_echo_queue_is_bounded() -> None:
    release = threading.Event()
    pacer = PacedSender(lambda frame: release.wait(5), 8000, max_queued_frames=5)
    try:
        results = [pacer.echo(b"\x00" * 320) for _ in range(12)]
        assert results[:5] == [True] * 5 and results[-1] is False
        assert pacer.stats.dropped == results.count(False) >= 6
        assert pacer.queued <= 5
    finally:
        release.set()
        pacer.close()


class FakeTime:
    """A simulated clock: sleep() advances it instantly, send() can take simulated time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sent: list[float] = []
        self.cost: dict[int, float] = {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def send(self, frame: bytes) -> None:
        self.sent.append(self.now)
        self.now += self.cost.get(len(self.sent), 0.004)  # every send takes 4 ms, some longer


def run_fake(cost: dict[int, float], frames_n: int = 60, prebuffer: int = 0) -> tuple[np.ndarray, PacedSender]:
    fake = FakeTime()
    fake.cost = cost
    pacer = PacedSender(fake.send, 16000, clock=fake.clock, sleep=fake.sleep, prebuffer_frames=prebuffer)
    assert pacer.play(silence(frames_n * 0.02, 16000)).wait(5)
    pacer.close()
    return np.array(fake.sent), pacer


def test_schedule_is_absolute_so_send_time_does_not_accumulate() -> None:
    sent, pacer = run_fake({})
    gaps = np.diff(sent)
    assert np.allclose(gaps, 0.02, atol=1e-9)  # 4 ms per send is absorbed, not added
    assert abs(pacer.stats.drift_ms) < 1e-6 and pacer.stats.resyncs == 0


def test_small_stall_catches_up_and_big_stall_resyncs_without_burst() -> None:
    sent, pacer = run_fake({10: 0.045})  # 45 ms stall: behind by ~2 frames
    assert pacer.stats.resyncs == 0
    assert abs((sent[-1] - sent[0]) - 59 * 0.02) < 1e-6  # back on the original schedule
    sent, pacer = run_fake({10: 6.0})  # six seconds lost: more than the 5 s the sender catches up
    assert pacer.stats.resyncs == 1
    gaps = np.diff(sent)
    assert gaps[9] == pytest.approx(6.0) and np.allclose(np.delete(gaps, 9), 0.02, atol=1e-9)  # no burst


def test_pacing_stats_figures() -> None:
    s = PacingStats(np.array([0.0, 0.02, 0.041, 0.06]), 4, 0, 0)
    assert np.allclose(s.intervals_ms, [20, 21, 19])
    assert s.jitter_ms(50) == pytest.approx(1.0)
    assert s.drift_ms == pytest.approx(0.0, abs=1e-9)
    assert "jitter" in s.summary()


# -------------------------------------------------------------------------------------- recorder


def test_recorder_header_is_valid_before_close(tmp_path: Path) -> None:
    path = tmp_path / "calls" / "live.wav"
    rec = WavRecorder(path, 16000)
    data = tone(440, 0.2, 16000)
    for f in to_frames(data, 16000):
        rec.write(f)
    samples, rate = read_wave(path)  # the file is still open
    assert rate == 16000 and np.array_equal(samples, data)
    rec.write_samples(np.full(100, 0.5))
    assert (rec.frames_written, rec.samples_written) == (10, 3300)
    assert read_wave(path)[0].size == 3300
    rec.close()
    rec.close()
    with pytest.raises(AudioError, match="closed"):
        rec.write(b"\x00\x00")
    with WavRecorder(tmp_path / "x.wav", 8000) as rec2, pytest.raises(InvalidInput, match="odd"):
        rec2.write(b"\x00\x00\x00")


def test_recorder_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "threads.wav"
    with WavRecorder(path, 8000) as rec:

        def writer(value: int) -> None:
            for _ in range(200):
                rec.write(np.full(160, value, dtype=np.int16).tobytes())

        threads = [threading.Thread(target=writer, args=(v,)) for v in (1, 2, 3, 4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert rec.frames_written == 800
    samples, _ = read_wave(path)
    blocks = samples.reshape(800, 160)
    assert (blocks == blocks[:, :1]).all()  # frames never interleave mid-frame
    assert sorted(np.bincount(blocks[:, 0])[1:].tolist()) == [200] * 4


CHILD = r"""
import sys
import numpy as np
from labkit.media.recorder import WavRecorder

rec = WavRecorder(sys.argv[1], 16000)
i = 0
while True:
    rec.write(np.full(320, i, dtype=np.int16).tobytes())
    print(i, flush=True)
    i += 1
"""


def test_recording_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    last = kill_while_writing(CHILD, path, until=300)
    assert last >= 300
    samples, rate = read_wave(path)
    assert rate == 16000
    assert samples.size % 320 == 0 and samples.size >= (last + 1) * 320
    blocks = samples.reshape(-1, 320)
    assert np.array_equal(blocks[:, 0], np.arange(blocks.shape[0]))
    assert (blocks == blocks[:, :1]).all()


# ------------------------------------------------------------------------------------- Recording


def test_recording_from_samples_and_metadata() -> None:
    x = tone(440, 1.5, 16000, level=0.5)
    rec = Recording(x, 16000, call_uuid="c-1", label="greeting", frames_received=75)
    assert rec.rate == 16000 and rec.duration == 1.5 and rec.path is None and len(rec) == 24000
    assert rec.samples is x
    assert rec.rms() == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    part = rec.segment(0.5, 1.0)
    assert part.duration == pytest.approx(0.5) and part.call_uuid == "c-1" and "0.50-1.00" in part.label
    assert rec.segment(1.0, 99).duration == pytest.approx(0.5)
    assert Recording(silence(1, 8000), 8000).rms() == 0.0
    with pytest.raises(InvalidInput):
        rec.segment(1.0, 0.5)
    with pytest.raises(InvalidInput, match="rate"):
        Recording(x)
    assert "greeting" in repr(rec) and "1.50 s" in repr(rec)
    assert Recording(x / 32767.0, 16000).samples.dtype == np.int16


def test_recording_from_path_is_lazy_and_follows_a_growing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        Recording(tmp_path / "none.wav")
    path = tmp_path / "growing.wav"
    with WavRecorder(path, 16000) as rec:
        rec.write_samples(tone(440, 0.5, 16000))
        r = Recording(path, call_uuid="abc")
        assert r._samples is None  # nothing read yet
        assert r.duration == pytest.approx(0.5) and r._samples is None
        assert r.samples.size == 8000
        rec.write_samples(tone(440, 0.5, 16000))
        time.sleep(0.01)  # coarse mtime filesystems: size changed anyway
        assert r.samples.size == 16000
    mp3 = Recording(AUDIO / "music.mp3")
    assert mp3.rate == 16000 and mp3.samples.dtype == np.int16


def test_recording_save_round_trips(tmp_path: Path) -> None:
    x = tone(700, 0.4, 8000)
    rec = Recording(x, 8000)
    out = rec.save(tmp_path / "sub" / "out.wav")
    samples, rate = read_wave(out)
    assert rate == 8000 and np.array_equal(samples, x)
    mp3 = rec.save(tmp_path / "out.mp3")
    assert probe(mp3).format == "MP3"
    assert Recording(mp3).correlate(rec) > 0.9


def test_play_is_not_normalised() -> None:
    from IPython.display import Audio

    quiet = Recording(tone(440, 0.2, 16000, level=0.01), 16000)
    player = quiet.play()
    assert isinstance(player, Audio)
    with wave.open(io.BytesIO(player.data)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.abs(data).max() < 0.02 * 32767  # normalize=True would have scaled it to full scale
    with pytest.raises(AudioError, match="empty"):
        Recording(np.zeros(0, dtype=np.int16), 16000).play()


def test_plot_returns_figure_and_bounds_points_for_long_audio() -> None:
    from matplotlib.figure import Figure

    rec = Recording(load(AUDIO / "music.wav", 16000), 16000, label="music")
    fig = rec.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "music" in fig.axes[0].get_title(loc="left")

    ten_minutes = Recording(np.tile(rec.samples, 100), 16000)
    fig = ten_minutes.plot()
    band = fig.axes[0].collections[0]  # the min/max envelope
    assert len(band.get_paths()[0].vertices) < 5 * plots.MAX_COLUMNS
    image = fig.axes[1].images[0].get_array()
    assert image.shape[1] <= 1000
    fig.savefig(io.BytesIO(), format="png")

    import matplotlib.pyplot as plt

    own_fig, own_ax = plt.subplots()
    assert rec.plot(ax=own_ax) is own_fig
    plt.close(own_fig)


def test_envelope_keeps_peaks() -> None:
    x = np.zeros(1_000_003, dtype=np.int16)
    x[123_457] = 30000
    x[-1] = -30000
    idx, mins, maxs = plots.envelope(x, 1000)
    assert mins.size <= 1001 and maxs.max() == 30000 and mins.min() == -30000
    assert idx[np.argmax(maxs)] <= 123_457 < idx[np.argmax(maxs)] + 1001


def test_notebook_display() -> None:
    rec = Recording(tone(440, 0.5, 16000), 16000, call_uuid="uuid-1", label="hello <b>")
    page = rec._repr_html_()
    assert "<table>" in page and "uuid-1" in page and "hello &lt;b&gt;" in page
    assert "data:image/png;base64," in page and "<audio" in page


def test_correlate_finds_music_with_offset_and_rejects_noise() -> None:
    music = load(AUDIO / "music.wav", 16000)
    heard = np.concatenate([silence(1.3, 16000), (music * 0.3).astype(np.int16), silence(0.5, 16000)])
    rng = np.random.default_rng(1)
    heard = heard + rng.normal(0, 100, heard.size).astype(np.int16)
    rec = Recording(heard, 16000)
    score, offset = rec.find(AUDIO / "music.wav")
    assert score > 0.95 and offset == pytest.approx(1.3, abs=0.001)
    assert rec.correlate(AUDIO / "music.mp3") > 0.9
    assert rec.correlate((music, 16000)) > 0.95
    # A recording shorter than the reference (it heard a part) still matches.
    part = Recording(music[32000:64000], 16000)
    score, offset = part.find(AUDIO / "music.wav")
    assert score > 0.99 and offset == pytest.approx(-2.0, abs=0.001)
    noise = Recording(rng.normal(0, 3000, 16000 * 8).astype(np.int16), 16000)
    assert noise.correlate(AUDIO / "music.wav") < 0.2
    assert Recording(silence(3, 16000), 16000).correlate(AUDIO / "music.wav") == 0.0
    assert rec.correlate(AUDIO / "prompt.wav") < 0.5


def test_frame_timing_plot() -> None:
    times = np.arange(500) * 0.02 + np.random.default_rng(0).normal(0, 0.0005, 500)
    fig = plots.frame_timing_plot(times)
    assert len(fig.axes) == 2 and "500 frames" in fig.axes[0].get_title(loc="left")
    long = plots.frame_timing_plot(np.arange(20000) * 0.02)
    assert long.axes[0].collections  # enveloped
    with pytest.raises(InvalidInput):
        plots.frame_timing_plot([1.0])


def test_media_package_exports_lazily() -> None:
    code = "import sys, labkit.media as m; assert 'soundfile' not in sys.modules; assert m.Recording; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    assert audio.SUPPORTED.startswith("MP3")


def test_correlate_matches_a_recording_that_starts_late():
    """A bit-exact copy missing the reference's first 40 ms still scores 1 (and says where it starts)."""
    import numpy as np

    from labkit.media import Recording
    from labkit.media.audio import load

    ref = load(Path(__file__).resolve().parents[2] / "audio" / "prompt.wav", 16000)
    late = Recording(np.concatenate([ref[640:], np.zeros(4000, np.int16)]), 16000)
    score, offset = late.find((ref, 16000))
    assert score > 0.99 and offset == pytest.approx(-0.04)


def test_native_rate_reads_headers_without_decoding(tmp_path):
    import numpy as np
    import soundfile as sf

    from labkit.media import Recording
    from labkit.media.audio import native_rate

    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(2400, np.int16), 24000, subtype="PCM_16")
    assert native_rate(str(path)) == 24000 and native_rate(path.read_bytes()) == 24000
    assert native_rate((np.zeros(10), 8000)) == 8000 and native_rate(Recording(np.zeros(10, np.int16), 16000)) == 16000
    assert native_rate(b"not audio") is None and native_rate(str(tmp_path / "missing.wav")) is None


def test_recorder_in_an_unwritable_place_fails_without_raising(tmp_path: Path) -> None:
    """A folder that cannot be made (its parent is a file: root-proof) marks the recorder failed."""
    (tmp_path / "not-a-folder").write_text("x")
    reasons: list[str] = []
    rec = WavRecorder(tmp_path / "not-a-folder" / "day" / "call.wav", 16000, on_error=reasons.append)
    rec.write(bytes(640))
    rec.write_samples(np.zeros(10))
    rec.close()
    assert rec.failed and reasons == [rec.failed] and "cannot create the recording" in rec.failed
    assert rec.frames_dropped == 1 and rec.frames_written == 0
    assert "failed" in repr(rec)


def test_a_write_fault_keeps_what_was_written_as_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "full.wav"
    reasons: list[str] = []
    rec = WavRecorder(path, 16000, on_error=reasons.append)
    frames_in = [np.full(320, i, dtype=np.int16).tobytes() for i in range(1, 60)]
    for f in frames_in[:50]:
        rec.write(f)
    real = rec._append
    calls = {"n": 0}

    def disk_full(data):
        calls["n"] += 1
        real(data[: len(data) // 2])  # half a frame lands first, like a disk filling up mid-frame
        raise OSError(28, "No space left on device")

    rec._append = disk_full
    for f in frames_in[50:]:
        rec.write(f)  # never raises into the caller's loop
    rec.close()
    assert calls["n"] == 1 and len(reasons) == 1 and "No space left" in reasons[0]
    assert (rec.frames_written, rec.frames_dropped) == (50, 9)
    samples, rate = read_wave(path)  # header sizes match the whole frames on disk
    assert rate == 16000 and samples.size == 50 * 320
    assert np.array_equal(samples.reshape(50, 320)[:, 0], np.arange(1, 51))


def test_recorder_without_a_mapped_header_patches_the_sizes_with_pwrite(tmp_path: Path) -> None:
    """Where a file system cannot map the header, the sizes are patched with os.pwrite after every write."""
    path = tmp_path / "fallback.wav"
    rec = WavRecorder(path, 8000, map_header=False)
    assert rec._header is None
    data = tone(300, 0.3, 8000)
    for f in to_frames(data, 8000):
        rec.write(f)
    samples, rate = read_wave(path)  # still open: the header is already right
    assert rate == 8000 and np.array_equal(samples, data)
    rec.close()
    assert np.array_equal(read_wave(path)[0], data)


def test_recorder_header_is_valid_after_every_batch_and_every_frame_is_in_order(tmp_path: Path) -> None:
    """The writer thread's tick: several frames in one write; after each, `wave` (which trusts the header's
    sizes) reads exactly the frames written so far, in order, and the file holds no byte more."""
    path = tmp_path / "ticks.wav"
    rec = WavRecorder(path, 16000)
    seq = 0
    for batch in (1, 3, 1, 7, 2, 50):
        rec.write_frames([np.full(320, seq + i, dtype="<i2").tobytes() for i in range(batch)])
        seq += batch
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 320)
        assert np.array_equal(got[:, 0], np.arange(seq)) and (got == got[:, :1]).all()
        assert path.stat().st_size == 44 + seq * 640
    assert rec.frames_written == seq
    rec.close()


def _late_frames(sent: np.ndarray, jitter_frames: int = 3) -> int:
    """Frames sent after a platform playing one per 20 ms (from the first arrival, after its jitter buffer
    of `jitter_frames`) needed them: each is a gap the caller hears."""
    needed = sent[0] + (np.arange(sent.size) + jitter_frames) * 0.02
    return int((sent > needed + 1e-9).sum())


def test_prebuffer_gives_the_platform_slack_so_a_short_stall_is_not_heard() -> None:
    """The first frames go at once; a stall shorter than that slack is caught up; a longer one re-primes."""
    sent, pacer = run_fake({}, prebuffer=10)
    assert np.allclose(np.diff(sent)[:10], 0.004)  # the prebuffer: back to back
    assert np.allclose(np.diff(sent)[13:], 0.02, atol=1e-9) and pacer.stats.resyncs == 0  # then paced
    sent, pacer = run_fake({30: 0.15}, prebuffer=10)  # 150 ms stall, inside the 200 ms of slack
    assert pacer.stats.resyncs == 0 and _late_frames(sent) == 0
    sent, pacer = run_fake({30: 0.15}, prebuffer=0)  # the same stall without slack is heard
    assert _late_frames(sent) > 0
    sent, pacer = run_fake({30: 0.5}, prebuffer=10)  # longer than the slack: caught up, no new schedule
    assert pacer.stats.resyncs == 0 and pacer.stats.stalls >= 1 and np.diff(sent)[30:].min() >= 0.004 - 1e-9
    sent, pacer = run_fake({30: 6.0}, prebuffer=10)  # longer than the catch-up limit: one resync
    assert pacer.stats.resyncs == 1


def test_queued_counts_the_frame_being_sent_so_nothing_overtakes_it() -> None:
    """websocket notify waits for `queued == 0`: the last frame must already be on the wire by then."""
    in_send, release = threading.Event(), threading.Event()
    sent: list[bytes] = []

    def slow_send(frame: bytes) -> None:
        in_send.set()
        release.wait(5)
        sent.append(frame)

    pacer = PacedSender(slow_send, 8000, prebuffer_frames=0)
    try:
        pacer.play(np.zeros(160, np.int16))  # one frame
        assert in_send.wait(5)
        assert pacer.queued == 1 and not sent  # taken off the queue, not sent yet: still counted
        release.set()
        deadline = time.monotonic() + 5
        while pacer.queued and time.monotonic() < deadline:
            time.sleep(0.001)
        assert pacer.queued == 0 and len(sent) == 1
    finally:
        release.set()
        pacer.close()


def test_a_recordings_plot_title_fits_over_its_figure(tmp_path):
    """Notebook 05's title ran off the figure: a socket recording's file name and full call id (issue 22)."""
    import soundfile as sf

    from labkit.media.recording import Recording

    path = tmp_path / ("call-" + "0" * 8 + "-1111-4222-8333-444444444444-20261207T050000Z-16000.wav")
    sf.write(path, np.zeros(16000, np.int16), 16000, subtype="PCM_16")
    rec = Recording(path, call_uuid="aaaaaaaa-1111-4222-8333-444444444444")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = rec.plot()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = fig.axes[0]._left_title  # set_title(loc="left")
    box = title.get_window_extent(canvas.get_renderer())
    assert box.x1 <= fig.bbox.x1, (title.get_text(), box.x1, fig.bbox.x1)
    assert "call aaaaaaaa," not in title.get_text() and title.get_text().endswith("call aaaaaaaa")


def test_coverage_finds_every_piece_across_a_gap_and_refuses_the_wrong_order():
    """A stall on the live path inserts silence and shifts the rest: one correlation over the whole file then
    reads ~0.5 though every piece arrived; coverage counts the pieces found, in order."""
    from labkit.media import Recording

    said = Recording(str(REPO / "audio" / "prompt.wav")).segment(0.2, 1.9)
    s = said.samples
    half = s.size // 2
    gap = np.zeros(int(0.04 * said.rate), dtype=s.dtype)
    with_gap = Recording(np.concatenate([s[:half], gap, s[half:]]), said.rate)
    assert with_gap.correlate(said) < 0.8 and with_gap.coverage(said) == 1.0
    swapped = Recording(np.concatenate([s[half:], s[:half]]), said.rate)
    assert 0.4 <= swapped.coverage(said) <= 0.6
    noise = Recording(np.random.default_rng(1).normal(0, 3000, s.size).astype(np.int16), said.rate)
    assert noise.coverage(said) == 0.0
