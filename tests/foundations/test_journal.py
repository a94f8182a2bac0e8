"""The event journal on a full disk, and a state folder the lab cannot use (issue 18, item 6).

The full disk is real where it can be: a 64 KiB tmpfs mounted for the test (root only; skipped
elsewhere). A short write mid-line, which a real disk gives only by chance, is injected at `os.write`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import events as events_module
from labkit.config import state_dir
from labkit.errors import ConfigError
from labkit.events import EventLog


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "64k", options: str = "") -> Iterator[Path]:
    """A real tmpfs of `size` at `folder` (skips when this machine cannot mount one)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a tiny tmpfs needs root to mount")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def whole_lines(path: Path) -> list[dict]:
    """Every line of the journal, each of which must be whole JSON ending in a newline."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"the journal ends mid-line: {data[-60:]!r}"
    return [json.loads(line) for line in data.splitlines()]


def fill_until_full(log: EventLog) -> int:
    """Add 3 KB events until the journal stops; returns how many were added."""
    for n in range(1, 200):
        log.add("event", {"uuid": "u", "status": "x", "n": n, "pad": "z" * 3000})
        if log.journal_error:
            return n
    raise AssertionError("the disk never filled")


def full_disk_scenario(folder: Path) -> None:
    """A journal on a 64 KiB tmpfs fills it: every line on disk is whole, history() reads what fitted,
    the rest stays in memory with one 'journal-stopped' line, and close() does not raise."""
    with tiny_disk(folder) as disk:
        log = EventLog(journal=disk / "events" / "run.jsonl")
        added = fill_until_full(log)
        lines = whole_lines(log.journal)
        assert 0 < len(lines) < added
        assert "No space left" in log.journal_error
        history = list(log.history())
        assert [e.payload["n"] for e in history] == list(range(1, len(lines) + 1)) and log.history_skipped == 0
        assert [e.payload["n"] for e in log if e.kind == "event"] == list(range(1, added + 1))
        assert [e.status for e in log if e.kind == "lab"] == ["journal-stopped"]
        log.add("event", {"uuid": "u", "status": "after"})  # still recorded, in memory
        assert log[-1].payload["status"] == "after"
        log.close()
        log.close()


def test_a_full_disk_never_tears_a_line(tmp_path):
    full_disk_scenario(tmp_path / "disk")


def torn_line_scenario(tmp_path: Path) -> None:
    """A journal whose last line was cut (a kill -9 mid-write): history() skips it and says so."""
    log = EventLog(journal=tmp_path / "torn.jsonl")
    for n in range(3):
        log.add("event", {"uuid": "u", "status": "s", "n": n})
    log.close()
    with open(log.journal, "ab") as handle:
        handle.write(b'{"seq": 99, "time": "2026-01-01T00:00:00+00:00", "kind": "event", "payl')
    history = list(log.history())
    assert [e.payload.get("n") for e in history[:3]] == [0, 1, 2]
    assert history[-1].kind == "lab" and history[-1].status == "journal-torn" and history[-1].payload["lines"] == [4]
    assert log.history_skipped == 1 and "not whole events" in history[-1].payload["reason"]


def test_history_skips_and_reports_a_torn_last_line(tmp_path):
    torn_line_scenario(tmp_path)


def test_a_short_write_is_cut_back_to_the_line_before(tmp_path, monkeypatch):
    """The disk fills in the middle of a line (injected: os.write takes half, then ENOSPC)."""
    log = EventLog(journal=tmp_path / "short.jsonl")
    log.add("event", {"uuid": "u", "status": "one"})
    real_write = os.write

    def half_then_full(fd: int, data) -> int:
        if len(data) > 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(events_module.os, "write", half_then_full)
    log.add("event", {"uuid": "u", "status": "two", "pad": "p" * 500})
    monkeypatch.setattr(events_module.os, "write", real_write)
    assert [row["payload"]["status"] for row in whole_lines(log.journal)] == ["one"]
    assert log.journal_error and [e.status for e in log][-2:] == ["two", "journal-stopped"]
    log.close()


def test_close_never_raises(tmp_path, monkeypatch):
    log = EventLog(journal=tmp_path / "close.jsonl")
    log.add("event", {"uuid": "u", "status": "one"})

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(events_module.os, "close", broken)
    log.close()  # must not raise


@pytest.mark.parametrize("how", ["a file", "under a file"])
def test_an_unusable_labkit_home_is_a_config_error(tmp_path, monkeypatch, how):
    (tmp_path / "f").write_text("x")
    home = tmp_path / "f" if how == "a file" else tmp_path / "f" / "home"
    monkeypatch.setenv("LABKIT_HOME", str(home))
    with pytest.raises(ConfigError, match="LABKIT_HOME") as info:
        state_dir()
    assert "set LABKIT_HOME to a folder" in str(info.value)


def test_a_read_only_labkit_home_is_a_config_error(tmp_path, monkeypatch):
    with tiny_disk(tmp_path / "ro", options=",ro") as home:  # read-only even for root
        monkeypatch.setenv("LABKIT_HOME", str(home))
        with pytest.raises(ConfigError, match="not a folder this user can write"):
            state_dir()
