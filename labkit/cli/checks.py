"""`Check`: one result of `labkit doctor`, shared by the doctor's local checks (doctor.py) and its account
checks (doctor_account.py), which both make them and neither imports the other for it."""

from __future__ import annotations

from typing import Any


class Check(tuple):
    """One doctor result. Unpacks as `(check, ok, detail)`; `ok` is True, False, or None (skipped/info).

    `advice` is the one line that says what to do when not ok; `blocking` says whether a failure stops
    the lab from running (an unplayable audio file does not).
    """

    def __new__(cls, check: str, ok: bool | None, detail: str, *, advice: str = "",
                blocking: bool = True) -> Check:
        self = super().__new__(cls, (check, ok, detail))
        self.advice = advice
        self.blocking = blocking
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return tuple(self), {"advice": self.advice, "blocking": self.blocking}

    @property
    def check(self) -> str:
        return self[0]

    @property
    def ok(self) -> bool | None:
        return self[1]

    @property
    def detail(self) -> str:
        return self[2]

    @property
    def fails(self) -> bool:
        """True when this check stops the lab (a blocking failure)."""
        return self.ok is False and self.blocking

    def __repr__(self) -> str:
        extra = f", advice={self.advice!r}" if self.advice else ""
        return f"Check({self.check!r}, {self.ok!r}, {self.detail!r}{extra}, blocking={self.blocking!r})"
