"""The pytest plugin (entry point `pytest11: labkit`): test your own Vonage voice app against the sandbox.

Fixtures (nothing starts unless a test asks for one of them):
    vonage_sandbox   a sandbox for the session, reset before each test (its own `labkit sandbox` process by
                     default; `--vonage-in-process` or the marker's in_process=True for one in this process)
    vonage_app       vonage_app(answer_url=..., event_url=..., fallback_url=...): the application, set
                     through the Application API as on Vonage
    phone            phone(number, **behaviour): a virtual phone, with dial(), press(), say(), hangup()
    vonage_client    the vonage Python SDK configured for the sandbox

Marker: @pytest.mark.vonage_sandbox(speed=10, chaos="jitter=0.2,duplicate=0.2,seed=7", signed=False,
in_process=True). Sandboxes are kept per (speed, chaos, in_process) for the session; each pytest-xdist
worker is its own session, so it gets its own sandboxes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from labkit.testing import report

if TYPE_CHECKING:  # pragma: no cover - imported when a fixture is used, so pytest without them stays light
    from labkit.testing.phones import Phone
    from labkit.testing.service import VonageSandbox

MARKER = "vonage_sandbox"
MARKER_KEYS = ("speed", "chaos", "signed", "in_process")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labkit", "labkit: test Vonage voice apps against the local sandbox")
    group.addoption("--vonage-speed", type=float, default=None,
                    help="clock speed of the sandbox (default: ini vonage_sandbox_speed, else 1)")
    group.addoption("--vonage-in-process", action="store_true", default=None,
                    help="run the sandbox in the test process instead of its own `labkit sandbox` process")
    group.addoption("--vonage-artifacts", default=None,
                    help="folder for the heard audio of failed call assertions (default: next to --junitxml, "
                         "else test-artifacts/)")
    parser.addini("vonage_sandbox_speed", "default clock speed of the sandbox", default="1")
    parser.addini("vonage_sandbox_in_process", "run the sandbox in the test process", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(speed=1, chaos=None, signed=True, in_process=False): the sandbox this test gets "
                   "(clock speed, chaos delivery of webhooks, signed webhooks, in this process)")
    folder = config.getoption("--vonage-artifacts")
    if folder is None:
        xml = getattr(config.option, "xmlpath", None)
        folder = Path(xml).resolve().parent / "vonage-artifacts" if xml else config.rootpath / "test-artifacts"
    report.set_context(Path(folder))


def pytest_runtest_setup(item: pytest.Item) -> None:
    report.set_context(test=item.nodeid)


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    config = request.config
    speed = config.getoption("--vonage-speed")
    in_process = config.getoption("--vonage-in-process")
    settings: dict[str, Any] = {
        "speed": float(speed if speed is not None else config.getini("vonage_sandbox_speed")),
        "chaos": None, "signed": True,
        "in_process": bool(in_process if in_process is not None else config.getini("vonage_sandbox_in_process")),
    }
    for mark in reversed(list(request.node.iter_markers(MARKER))):  # the closest marker wins
        unknown = set(mark.kwargs) - set(MARKER_KEYS)
        if unknown or mark.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes {', '.join(MARKER_KEYS)} as keywords; "
                                    f"not {sorted(unknown) or mark.args}")
        settings.update(mark.kwargs)
    return settings


class _Pool:
    """The session's sandboxes, one per (speed, chaos, in_process), started on first use."""

    def __init__(self, home: Callable[[], Path]) -> None:
        self._home = home
        self.sandboxes: dict[tuple, VonageSandbox] = {}

    def get(self, speed: float, chaos: str | None, in_process: bool) -> VonageSandbox:
        key = (float(speed), chaos, bool(in_process))
        if key not in self.sandboxes:
            from labkit.testing.service import VonageSandbox

            self.sandboxes[key] = VonageSandbox.start(self._home(), speed=speed, chaos=chaos, in_process=in_process)
        return self.sandboxes[key]

    def close(self) -> None:
        for sandbox in self.sandboxes.values():
            sandbox.stop()
        self.sandboxes.clear()


@pytest.fixture(scope="session")
def _vonage_sandbox_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pool]:
    """The session's sandboxes (per xdist worker: each worker is a session with its own temp folder)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    pool = _Pool(lambda: tmp_path_factory.mktemp("vonage-sandbox"))
    yield pool
    pool.close()
    if bundle is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = bundle


@pytest.fixture
def vonage_sandbox(request: pytest.FixtureRequest, _vonage_sandbox_pool: _Pool) -> VonageSandbox:
    """A sandbox with no calls, phones or webhooks left from earlier tests (see labkit/testing/service.py)."""
    s = _settings(request)
    sandbox = _vonage_sandbox_pool.get(s["speed"], s["chaos"], s["in_process"])
    sandbox.reset()
    sandbox.trust()
    sandbox.signed = bool(s["signed"])  # what vonage_app sets signed_callbacks to unless told otherwise
    return sandbox


@pytest.fixture
def vonage_app(vonage_sandbox: VonageSandbox) -> Iterator[Callable[..., dict]]:
    """vonage_app(answer_url=..., event_url=..., fallback_url=..., answer_method="GET", event_method="POST",
    signed=None): set the sandbox application's webhooks through the Application API; cleared after."""
    used = []

    def configure(answer_url: str | None = None, event_url: str | None = None, fallback_url: str | None = None,
                  *, answer_method: str = "GET", event_method: str = "POST", signed: bool | None = None) -> dict:
        used.append(True)
        return vonage_sandbox.configure_app(answer_url, event_url, fallback_url, answer_method=answer_method,
                                            event_method=event_method, signed=signed)

    yield configure
    if used:  # the next test starts from an application that calls nobody
        vonage_sandbox.remote.reset()
        vonage_sandbox.configure_app()


@pytest.fixture
def phone(vonage_sandbox: VonageSandbox) -> Callable[..., Phone]:
    """phone(number, answer_after=..., outcome=..., hangup_after=..., machine=...): a virtual phone."""
    return vonage_sandbox.phone


@pytest.fixture
def vonage_client(vonage_sandbox: VonageSandbox) -> Any:
    """The vonage Python SDK (`vonage.Vonage`) configured for the sandbox (Voice, Application, Numbers)."""
    return vonage_sandbox.client()
