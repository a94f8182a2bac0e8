"""Recordings the platform makes: `record` actions and recorded conversations, written as files that
`GET /v1/files/{id}` serves, with the record event that points at them."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.sandbox.audio.mixer import to_int16
from labkit.sandbox.engine.legs import iso, utcnow

if TYPE_CHECKING:  # pragma: no cover
    from labkit.sandbox.engine.conversations import Conversation
    from labkit.sandbox.engine.legs import SandboxCall

log = logging.getLogger("labkit.sandbox")

RECORD_RATE = 16000
SILENCE_LEVEL = 200  # peak below which a 20 ms frame counts as silence (record endOnSilence, speech input)


def mp3_input(samples: np.ndarray) -> np.ndarray:
    """int16 samples as the float32 (-1..1) that libsndfile encodes to MP3 correctly.

    libsndfile 1.2.2 (the one soundfile 0.14 bundles) corrupts 16-bit *stereo* MP3:
    `mpeg_l3_encode_write_short_stereo` (src/mpeg_l3_encode.c) copies each chunk into its buffer with
    `memcpy (ubuf.sbuf, ptr + total, writecount)`, a count of bytes where it means samples (shorts), so
    only the first half of every chunk (one LAME frame: 576 sample frames at 8-24 kHz, 1152 at 32 kHz
    and up) reaches LAME; the second half is whatever the buffer held before, a buzz at the frame rate.
    Measured here (two speech-like channels, decoded against what went in): the first half of each
    frame differs by 24/207 (8/16 kHz, mean |error| in int16 steps), the second by 1229/3506; channel
    correlation 0.71 at 8 kHz, 0.24 at 16 kHz. The float path (`..._write_float_stereo`) hands the
    caller's buffer straight to LAME: the same samples as float32 decode with correlation 0.9999
    (8 kHz) and 0.999 (16 kHz). Mono int16 is unaffected, but one path for both keeps it simple.
    """
    return np.asarray(samples, dtype=np.float32) / 32768.0


class Recorder:
    """Collects 20 ms frames (at one rate) for a `record` action or a recorded conversation."""

    def __init__(self, rate: int, *, start_tick: int, timeout_ticks: int | None = None,
                 end_on_silence_ticks: int | None = None, end_on_key: str | None = None,
                 fmt: str = "mp3", channels: int = 1,
                 on_done: Callable[[Recorder], None] | None = None) -> None:
        self.rate = rate
        self.channels = max(1, int(channels))
        self.chunks: list[np.ndarray] = []
        self.started_at = utcnow()
        self.ended_at: dt.datetime | None = None
        self.start_tick = start_tick
        self.timeout_ticks = timeout_ticks
        self.end_on_silence_ticks = end_on_silence_ticks
        self.end_on_key = end_on_key
        self.format = fmt
        self.silent_run = 0
        self.done = False
        self.reported = False  # the record event was sent (a blocking `record` waits for it)
        self.on_done = on_done
        self.recording_uuid = str(uuidlib.uuid4())
        self.path: Path | None = None  # set once the file is written
        self.file_id: str | None = None  # the id in GET /v1/files/{id}

    def feed(self, frame: np.ndarray | None, n: int, tick: int) -> bool:
        """Add one frame (None = silence); return True when an end condition was met."""
        if self.done:
            return True
        if frame is None:
            self.chunks.append(np.zeros(n, dtype=np.int16))
            self.silent_run += 1
        else:
            data = to_int16(frame)
            self.chunks.append(data)
            self.silent_run = self.silent_run + 1 if np.abs(data).max(initial=0) < SILENCE_LEVEL else 0
        return self._ended(tick)

    def feed_split(self, said: np.ndarray | None, heard: np.ndarray | None, n: int, tick: int) -> bool:
        """Add one frame of what the leg said and heard: summed (mono), or said on channel 1 and
        heard on channel 2 (the others silent) for a split recording."""
        if self.channels == 1:
            both = heard if said is None else (said if heard is None else said + heard)
            return self.feed(both, n, tick)
        if self.done:
            return True
        frame = np.zeros((n, self.channels), dtype=np.int16)
        if said is not None:
            frame[:, 0] = to_int16(said)
        if heard is not None:
            frame[:, 1] = to_int16(heard)
        self.chunks.append(frame)
        quiet = np.abs(frame[:, :2].astype(np.int32).sum(axis=1)).max(initial=0) < SILENCE_LEVEL
        self.silent_run = self.silent_run + 1 if quiet else 0
        return self._ended(tick)

    def _ended(self, tick: int) -> bool:
        if self.timeout_ticks is not None and tick - self.start_tick >= self.timeout_ticks:
            return True
        return self.end_on_silence_ticks is not None and self.silent_run >= self.end_on_silence_ticks

    def samples(self) -> np.ndarray:
        """int16 samples: 1-D for mono, (frames, channels) for a split recording."""
        if self.chunks:
            return np.concatenate(self.chunks)
        return np.zeros((0, self.channels) if self.channels > 1 else 0, dtype=np.int16)


class Recordings:
    """Platform methods that start, finish and write recordings (mixed into `Platform`)."""

    def add_recorder(self, leg: SandboxCall, rec: Recorder) -> None:
        with self.lock:
            if leg.ended:
                return
            leg.recorders.append(rec)


    def _start_conversation_recorder(self, conv: Conversation) -> None:
        hook = conv.record_hook

        def done(rec: Recorder) -> None:
            if hook is None:
                return
            url, method, leg = hook
            self._record_event(leg, rec, url, method, conversation_uuid=conv.uuid)

        conv.recorder = Recorder(RECORD_RATE, start_tick=self.clock.ticks, fmt="mp3", on_done=done)


    def _finish_recorder(self, rec: Recorder) -> None:
        """Stop `rec` and write its file on a helper thread (never on the clock thread)."""
        if rec.done:
            return
        rec.done = True
        rec.ended_at = utcnow()
        threading.Thread(target=self._write_recording, args=(rec,), name="sandbox-recording",
                         daemon=True).start()


    def _write_recording(self, rec: Recorder) -> None:
        import soundfile as sf

        folder = self.home / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        file_id = str(uuidlib.uuid4())
        samples = rec.samples()
        fmt = rec.format if rec.format in ("mp3", "wav", "ogg") else "mp3"
        path = folder / f"{file_id}.{fmt}"
        try:
            if fmt == "mp3":
                sf.write(str(path), mp3_input(samples), rec.rate, format="MP3", bitrate_mode="CONSTANT")
                ctype = "audio/mpeg"
            elif fmt == "ogg":
                sf.write(str(path), samples, rec.rate, format="OGG", subtype="VORBIS")
                ctype = "audio/ogg"
            else:
                sf.write(str(path), samples, rec.rate, format="WAV", subtype="PCM_16")
                ctype = "audio/wav"
        except Exception:  # an encoder missing from this libsndfile: WAV always works
            log.exception("could not encode %s; writing WAV", fmt)
            path = folder / f"{file_id}.wav"
            sf.write(str(path), samples, rec.rate, format="WAV", subtype="PCM_16")
            ctype = "audio/wav"
        rec.path = path
        rec.file_id = file_id
        with self.lock:
            self.files[file_id] = (path, ctype)
        if rec.on_done is not None:
            try:
                rec.on_done(rec)
            except Exception:
                log.exception("recording callback failed")


    def _record_event(self, leg: SandboxCall, rec: Recorder, url: str | None, method: str | None,
                      *, conversation_uuid: str | None = None) -> None:
        path = rec.path
        assert path is not None
        if getattr(self, "account", None) is not None:  # only the application that recorded may download
            self.account.file_owners[rec.file_id] = self.account.owner_of(leg)
        payload = {
            "start_time": iso(rec.started_at),
            "recording_url": f"{self.files_base or self.base_url}/v1/files/{rec.file_id}",
            "size": path.stat().st_size,
            "recording_uuid": rec.recording_uuid,
            "end_time": iso(rec.ended_at),
            "conversation_uuid": conversation_uuid or leg.conversation.uuid,
            "timestamp": iso(utcnow()),
        }
        self.post(leg, payload, url=url, method=method)
