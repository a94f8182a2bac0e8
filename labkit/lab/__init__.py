"""The Lab: what a notebook drives. `facade` (the `Lab` object: start/stop, calls, recordings, panel),
`startup` (the server, then the mode's part: sandbox or tunnel and account), `webhooks` (answer and event
handling), `calls` (`Call`), `regions` (each call controlled at its `region_url`), `downloads` (a record
action's file), `ncco` (NCCO helpers on the SDK's models), `delivery` (late, duplicate and out-of-order
webhooks), `timeline` and `ncco_timing` (a call's events and scripts on one time axis), `history` and
`exchange` (the panel's call history: why a call went wrong, and its exchange with the app).

May import: the sandbox (`startup`, to start it; `history`, to read the sandbox's record of a leg and
say its problem in the sentences of `labkit.sandbox.control.problems`), live (the account, the tunnel,
reach checks), the server, media and the foundations. Never the widgets or the cli, except `Lab.panel()`,
which loads the widgets when asked (the one ignored import in the layers contract, pyproject.toml).

    from labkit.lab import Lab, Call, call_timeline     # names load on first use: `import labkit` stays fast
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.calls import Call
    from labkit.lab.facade import Lab
    from labkit.lab.timeline import call_timeline

__all__ = ["Call", "Lab", "call_timeline"]
_EXPORTS = {"Lab": "facade", "Call": "calls", "call_timeline": "timeline"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"labkit.lab.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'labkit.lab' has no attribute {name!r}")
