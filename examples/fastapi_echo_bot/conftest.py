"""The echo bot served by uvicorn on a real port (HTTP and WebSocket) for each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.testing.apps import serve

sys.path.insert(0, str(Path(__file__).parent))  # `import echo_bot` as `uvicorn echo_bot:app` would

import echo_bot  # noqa: E402


@pytest.fixture
def bot(vonage_app) -> Iterator[str]:
    """The bot's base URL, with the sandbox application pointed at it."""
    echo_bot.app.state.events.clear()
    echo_bot.app.state.socket_messages.clear()
    echo_bot.app.state.frames_echoed = 0
    with serve(echo_bot.app, asgi=True) as url:
        vonage_app(answer_url=f"{url}/answer", event_url=f"{url}/event")
        yield url
