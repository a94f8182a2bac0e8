"""Fixtures for the sandbox's tests that run `labkit sandbox` as its own process with an app beside it:
`app` (a plain webhook app that keeps every request, one per module) and `sb` (the pytest plugin's
`labkit sandbox` process, reset before each test and pointed at that app). A module that needs another
set-up defines its own `app` or `sb`, which wins."""

from __future__ import annotations

import pytest
from support.sandbox_process import PluginSandbox
from support.webhook_app import WebhookApp

SPEED = 10


@pytest.fixture(scope="module")
def app():
    server = WebhookApp()
    yield server
    server.stop()


@pytest.fixture
def sb(request, app):
    """The pytest plugin's sandbox in its own process (`vonage_sandbox`, reset before each test) at speed 10,
    its application pointed at `app` through the Application API (`vonage_app`), as a user's test does."""
    request.applymarker(pytest.mark.vonage_sandbox(speed=SPEED, in_process=False))  # a test's own marker wins
    shared = request.getfixturevalue("vonage_sandbox")
    request.getfixturevalue("vonage_app")(answer_url=f"{app.url}/answer", event_url=f"{app.url}/event")
    return PluginSandbox(shared)
