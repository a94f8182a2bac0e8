"""The IVR served on a real port for each test, configured from the sandbox as from production's env."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.testing.apps import serve

sys.path.insert(0, str(Path(__file__).parent))  # `import ivr` as `flask --app ivr run` would

from ivr import create_app  # noqa: E402


@pytest.fixture
def ivr(vonage_sandbox, vonage_app) -> Iterator[str]:
    """The IVR's base URL, with the sandbox application pointed at it (signed webhooks, as on Vonage)."""
    flask_app = create_app(vonage_sandbox.env())
    with serve(flask_app) as url:
        vonage_app(answer_url=f"{url}/answer", event_url=f"{url}/event")
        yield url
