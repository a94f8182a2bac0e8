"""What users import to test their own Vonage voice apps against the sandbox: the pytest plugin and the
assertions on what a call did (like moto's `mock_aws` and server mode, for the Voice API).

    def test_greeting(vonage_app, phone, my_app_url):          # fixtures from the plugin (plugin.py)
        vonage_app(answer_url=f"{my_app_url}/answer", event_url=f"{my_app_url}/event")
        call = phone("447700900001", answer_after=0).dial()
        call.wait_until_hung_up()
        call.assert_heard_text("Welcome to my app")

Modules: plugin.py (the `pytest11` entry point: fixtures, marker, options), service.py (`VonageSandbox`,
a sandbox in its own process or this one), process.py (`labkit sandbox` as a process, read from its
banner), phones.py and calls.py (virtual phones and calls, with waits that long-poll the sandbox),
assertions.py (what the caller heard, webhooks, final status), signals.py (DTMF and loudness checks),
report.py (failure messages, heard audio saved as WAV).

Layer: above the sandbox. May import: labkit.sandbox, labkit.media and the foundations (labkit.errors,
...); never the lab, live mode, the widgets or the CLI. Names load lazily so the plugin costs nothing to a
pytest run that does not use its fixtures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Call", "CallTimeout", "Phone", "SandboxProcess", "VonageSandbox", "assert_ended", "assert_heard_audio",
           "assert_heard_dtmf", "assert_heard_text", "assert_silent", "assert_webhook"]

if TYPE_CHECKING:  # pragma: no cover
    from labkit.testing.assertions import (
        assert_ended,
        assert_heard_audio,
        assert_heard_dtmf,
        assert_heard_text,
        assert_silent,
        assert_webhook,
    )
    from labkit.testing.calls import Call, CallTimeout
    from labkit.testing.phones import Phone
    from labkit.testing.process import SandboxProcess
    from labkit.testing.service import VonageSandbox

_WHERE = {"Call": "calls", "CallTimeout": "calls", "Phone": "phones", "SandboxProcess": "process",
          "VonageSandbox": "service"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(f"labkit.testing.{_WHERE[name]}"), name)
    if name.startswith("assert_") and name in __all__:
        return getattr(importlib.import_module("labkit.testing.assertions"), name)
    raise AttributeError(f"module 'labkit.testing' has no attribute {name!r}")
