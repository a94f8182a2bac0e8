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


@pytest.fixture(autouse=True)
def _lab_trusts_its_sandbox(request):
    """Before each test on the shared lab: REQUESTS_CA_BUNDLE trusts its sandbox again. The SDK reads that
    one process-wide variable, and under pytest-xdist any test may have run before this one in the worker
    (another sandbox's `trust()`, a fixture restoring what it found): once, the panel's calls failed with
    SSLError after one."""
    if "lab" in request.fixturenames:
        lab = request.getfixturevalue("lab")
        if lab.sandbox is not None:
            lab.sandbox.trust()


@pytest.fixture
def fresh(lab):
    """The shared lab with default handlers (and no panel call history), for a test that installs its own."""
    lab.clear_handlers()
    lab.__dict__.pop("_panel_history", None)  # the calls earlier tests' panels steered (panel_history.py)
    yield lab
    lab.clear_handlers()


def _fault_tally() -> dict | None:
    """This process's fault-suite tally (tests/test_faults.py keeps it), if that module ran here."""
    import sys

    for module in list(sys.modules.values()):
        tally = getattr(module, "FAULT_TALLY", None)
        if isinstance(tally, dict) and tally.get("tried"):
            return tally
    return None


_WORKER_TALLIES: list[dict] = []  # under pytest-xdist, what each worker sent back when it finished


def pytest_sessionfinish(session):
    """A pytest-xdist worker hands its tally to the controller, which prints the line."""
    output = getattr(session.config, "workeroutput", None)
    tally = _fault_tally()
    if output is not None and tally:
        output["fault_tally"] = dict(tally)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    tally = getattr(node, "workeroutput", {}).get("fault_tally")
    if tally:
        _WORKER_TALLIES.append(tally)


def pytest_terminal_summary(terminalreporter):
    """The fault suite's one line, summed over pytest-xdist's workers when there are any."""
    tallies = _WORKER_TALLIES or [t for t in [_fault_tally()] if t]
    if not tallies:
        return
    tally = {key: sum(t[key] for t in tallies) for key in tallies[0]}
    terminalreporter.write_line(
        f"fault suite: {tally['tried']} cases tried, {tally['held']} held, {tally['failed']} failed, "
        f"{tally['frames_lost']} frames lost" + (f" ({tally['skipped']} skipped)" if tally["skipped"] else ""))
