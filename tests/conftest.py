"""Shared fixtures: one sandbox-mode lab per test session, reset between tests."""

from __future__ import annotations

import os

import pytest

# The repository's conftest.py (loaded first) forces sandbox mode and drops live credentials.

@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A sandbox lab at 4x speed, shared by the tests that place calls (starting one costs ~0.3 s)."""
    from labkit import Lab

    os.environ.setdefault("LABKIT_HOME", str(tmp_path_factory.mktemp("labkit-home")))
    lab = Lab.start("sandbox", speed=4.0, quiet=True)
    lab.sockets.folder = tmp_path_factory.mktemp("recordings")
    yield lab
    lab.stop()


@pytest.fixture
def fresh(lab):
    """The shared lab with default handlers, for a test that installs its own."""
    lab.clear_handlers()
    yield lab
    lab.clear_handlers()


def pytest_terminal_summary(terminalreporter):
    """The fault suite's one line (tests/test_faults.py keeps the tally)."""
    import sys

    for module in list(sys.modules.values()):
        tally = getattr(module, "FAULT_TALLY", None)
        if isinstance(tally, dict) and tally.get("tried"):
            terminalreporter.write_line(
                f"fault suite: {tally['tried']} cases tried, {tally['held']} held, {tally['failed']} failed, "
                f"{tally['frames_lost']} frames lost" + (f" ({tally['skipped']} skipped)" if tally["skipped"] else ""))
            return
