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
