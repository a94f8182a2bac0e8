"""labkit: a Jupyter lab for the Vonage Voice API, with a local sandbox.

Heavy parts (Flask, the SDK, numpy, matplotlib) load on first use so that `import labkit` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError

__all__ = ["Lab", "LabkitError", "ncco"]
__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from labkit.lab.facade import Lab


def __getattr__(name: str) -> Any:
    if name == "Lab":
        from labkit.lab.facade import Lab

        return Lab
    if name == "ncco":
        import importlib

        return importlib.import_module("labkit.lab.ncco")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
