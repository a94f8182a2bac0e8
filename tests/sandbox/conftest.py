"""Fixtures for the sandbox's tests that run `labkit sandbox` as its own process with an app beside it:
`app` (a plain webhook app that keeps every request) and `sb` (the sandbox, pointed at that app), one pair
per test module. A module that needs another set-up defines its own `app` or `sb`, which wins."""

from __future__ import annotations

import pytest
from support.sandbox_process import SandboxProcess
from support.webhook_app import WebhookApp

SPEED = 10


@pytest.fixture(scope="module")
def app():
    server = WebhookApp()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sb(request, tmp_path_factory, app):
    home = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "-home")
    proc = SandboxProcess(home, "--answer-url", f"{app.url}/answer", "--event-url", f"{app.url}/event", speed=SPEED)
    yield proc
    proc.stop()
