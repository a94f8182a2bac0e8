"""The server loop's recording path: frames through a map of the WAV's end (labkit.media.wav_tail).

What a user relies on: the file is a WAV every reader opens, holding every frame in order, after every
frame (a killed kernel leaves a playable recording), and a finished one is the plain 44-byte-header WAV."""

from __future__ import annotations

import errno
import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.processes import kill_while_writing

from labkit.media import wav_tail
from labkit.media.recorder import WavRecorder
from labkit.media.recording import Recording

REPO = Path(__file__).resolve().parents[2]


def _frame(i: int, samples: int) -> bytes:
    return np.full(samples, i, dtype="<i2").tobytes()


def _firsts(path: Path, samples: int) -> np.ndarray:
    """Each frame's first sample, read by Python's `wave` (which trusts the header) and checked against
    libsndfile's reading of the same file."""
    with wave.open(str(path)) as w:
        got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    other, _ = sf.read(str(path), dtype="int16")
    assert np.array_equal(got, other)
    blocks = got.reshape(-1, samples)
    assert (blocks == blocks[:, :1]).all()  # no frame torn or shifted
    return blocks[:, 0]


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_every_frame_is_readable_in_order_across_windows_and_reservations(tmp_path: Path, rate: int) -> None:
    samples = rate // 50
    path = tmp_path / "call.wav"
    rec = WavRecorder(path, rate)
    assert rec._tail is not None  # this file system maps: the loop's path is the map
    live = Recording(path)
    frames = (3 * wav_tail.GROW) // (2 * samples) + 7  # past several windows and two reservations
    for i in range(frames):
        rec.append_frame(_frame(i, samples))
        if i < 3 or i % 97 == 0 or i == frames - 1:
            assert np.array_equal(_firsts(path, samples), np.arange(i + 1))
            assert live.samples.size == (i + 1) * samples  # a Recording follows the file as it grows
    assert path.stat().st_size > 44 + frames * samples * 2  # space reserved ahead, covered by padding
    rec.close()
    assert path.stat().st_size == 44 + frames * samples * 2  # finished: no byte more than the samples
    assert np.array_equal(_firsts(path, samples), np.arange(frames))
    assert (rec.frames_written, rec.samples_written) == (frames, frames * samples)


def test_other_writes_after_mapped_frames_go_on_from_the_last_sample(tmp_path: Path) -> None:
    """The writer thread (a slow disk moved recording there) writes after frames the loop mapped."""
    path = tmp_path / "moved.wav"
    rec = WavRecorder(path, 16000)
    for i in range(30):
        rec.append_frame(_frame(i, 320))
    rec.write_frames([_frame(30 + i, 320) for i in range(5)])
    assert rec._tail is None and path.stat().st_size == 44 + 35 * 640
    for i in range(35, 40):
        rec.append_frame(_frame(i, 320))
    rec.close()
    assert np.array_equal(_firsts(path, 320), np.arange(40))


def test_a_disk_that_cannot_reserve_more_goes_on_with_plain_writes(tmp_path: Path, monkeypatch) -> None:
    """No room to reserve (a filling disk) never loses a frame: the map is left, the padding dropped,
    and the next frames are written with os.write, which reports a really full disk as before."""
    path = tmp_path / "filling.wav"
    rec = WavRecorder(path, 16000)
    real = wav_tail.reserve
    refused: list[int] = []

    def full(fd: int, offset: int, length: int) -> None:
        refused.append(length)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wav_tail, "reserve", full)
    frames = wav_tail.GROW // 640 + 50  # past the first reservation
    for i in range(frames):
        rec.append_frame(_frame(i, 320))
    monkeypatch.setattr(wav_tail, "reserve", real)
    assert refused and rec._tail is None and rec.failed is None
    assert path.stat().st_size == 44 + frames * 640  # plain writes since: no padding left behind
    rec.close()
    assert np.array_equal(_firsts(path, 320), np.arange(frames))


def test_no_room_at_all_records_with_plain_writes_from_the_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(wav_tail, "reserve", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    path = tmp_path / "tight.wav"
    with WavRecorder(path, 16000) as rec:
        assert rec._tail is None
        for i in range(10):
            rec.append_frame(_frame(i, 320))
        assert path.stat().st_size == 44 + 10 * 640
    assert np.array_equal(_firsts(path, 320), np.arange(10))


CHILD = r"""
import sys
import numpy as np
from labkit.media.recorder import WavRecorder

rec = WavRecorder(sys.argv[1], 16000)
assert rec._tail is not None
i = 0
while True:
    rec.append_frame(np.full(320, i % 30000, dtype="<i2").tobytes())
    if i % 50 == 0:
        print(i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("until", [150, 400, 1000, 1700])  # past the first window (~102 frames) and more
def test_a_killed_process_leaves_every_mapped_frame_it_wrote(tmp_path: Path, until: int) -> None:
    """SIGKILL mid-recording (a Jupyter kernel killed mid-call): the pages stay with the kernel, and the
    file opens as a WAV with every frame up to the last one written, in order, padding and all, and none
    torn: a kill lands anywhere in a frame's copy (when the data size was stored before the samples, one
    run in three left a last frame of padding bytes counted as audio). Four kills, at random points."""
    path = tmp_path / "killed.wav"
    last = kill_while_writing(CHILD, path, until=until)
    assert last >= until
    firsts = _firsts(path, 320)
    assert firsts.size >= last + 1
    assert np.array_equal(firsts, np.arange(firsts.size) % 30000)


def test_a_really_full_disk_keeps_every_frame_that_fit(tmp_path: Path) -> None:
    """A 96 KiB tmpfs: the first window is reserved and mapped, the next cannot be, plain writes fill the
    rest, and the recorder stops with the reason; the file holds every frame that fit, in order."""
    if os.geteuid() != 0:
        pytest.skip("filling a disk needs a tiny tmpfs, and mounting one needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        reasons: list[str] = []
        rec = WavRecorder(mount / "call.wav", 16000, on_error=reasons.append)
        mapped = 0
        for i in range(400):
            rec.append_frame(_frame(i, 320))
            mapped += rec._tail is not None
        rec.close()
        assert mapped >= wav_tail.WINDOW // 640 - 1  # the first window went through the map
        assert len(reasons) == 1 and "No space left" in reasons[0]
        assert rec.frames_written + rec.frames_dropped == 400 and rec.frames_written > mapped
        assert np.array_equal(_firsts(mount / "call.wav", 320), np.arange(rec.frames_written))
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
