"""How a lab shows itself and what it hands a person: the sandbox's phones, the timeline of every call,
the panel, its repr. `LabDisplay` is mixed into `labkit.lab.facade.Lab`, which holds what it reads."""

from __future__ import annotations

import html
from typing import Any

from labkit import validate
from labkit.errors import LabkitError


class LabDisplay:
    """Mixed into `Lab`: display and sandbox shortcuts (reads `sandbox`, `settings`, `events`, `calls`, ...)."""

    sandbox: Any
    settings: Any
    events: Any
    calls: Any
    mode: str
    runner: Any
    stopped: bool
    number: Any
    public_url: Any
    local_url: str

    # -- sandbox shortcuts -----------------------------------------------------------------------
    def phone(self, number: str):
        """Sandbox only: the virtual phone at `number`."""
        if self.sandbox is None:
            raise LabkitError("Virtual phones exist only in sandbox mode (Lab.start('sandbox')).")
        return self.sandbox.phone(validate.phone_number(number))

    def callee(self, virtual_number: str = "447700900001"):
        """Who a tutorial calls, as `(number, phone)`: the virtual phone at `virtual_number` in sandbox
        mode, or your own phone (TO_NUMBER) and None in live mode. Keeps notebooks mode-agnostic."""
        if self.sandbox is not None:
            phone = self.phone(virtual_number)
            return phone.number, phone
        if not self.settings.to_number:
            raise LabkitError("Live mode calls TO_NUMBER: set it in .env to the phone you want to ring.")
        return self.settings.to_number, None

    # -- display -------------------------------------------------------------------------------
    def timeline(self, ax=None):
        """Every call's events, streams and talks on one time axis, a row per leg (matplotlib figure)."""
        from labkit.lab.timeline import call_timeline

        return call_timeline(self.events, ax=ax, audio_path=self.audio_path)

    def panel(self, **kwargs):
        """The ipywidgets control panel for placing and steering calls."""
        from labkit.widgets import panel

        return panel(self, **kwargs)

    def describe(self) -> str:
        parts = [f"labkit {self.mode} mode", f"server {self.local_url}"]
        if self.runner is not None and self.runner.note:
            parts.append(self.runner.note)
        if self.mode == "sandbox" and self.sandbox is not None:
            parts.append(f"sandbox Voice API {self.sandbox.base_url}")
            parts.append(f"your number {self.number}")
        elif self.mode == "live":
            parts.append(f"public URL {self.public_url}")
            parts.append(f"your number {self.number}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"<Lab {state}: {self.describe()}>"

    def _repr_html_(self) -> str:
        rows = [("mode", self.mode), ("server", self.local_url), ("public URL", self.public_url),
                ("number", self.number), ("calls", len(self.calls)), ("events", len(self.events))]
        if self.sandbox is not None:
            rows.append(("sandbox", self.sandbox.base_url))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<b>labkit</b> ({'stopped' if self.stopped else 'running'})<table>{body}</table>"
