"""The account's applications and number links on disk, so they outlive the sandbox process.

On Vonage an application made with `POST /v2/applications` stays until it is deleted, and a number stays
linked to it (Application API: "Deleting an application cannot be undone", the only way one goes; Numbers
API `/number/update`). A user's script that configured its app once must find it after `labkit sandbox`
restarts, or its JWTs get 401. So every change made through the Application and Numbers APIs is written
to `<home>/applications.json` (0600: it holds public keys only, but it is the account's state) and read
back when a sandbox starts on that home.

Kept: the applications made through the API (id, name, public key, capabilities, privacy) and which
application each number is linked to (or its sip/tel routing). Not kept here: the default application,
which auth.py keeps in `<home>/application.json` with the account's credentials, and whose webhooks are
set by whoever starts the sandbox (CLI flags, the lab) each time; calls, phones, recordings and webhook
logs, which live as long as the process (or until `POST /_labkit/reset`).

Two sandboxes on one home at once: each writes the whole state it holds; the last write wins (the
sandbox's own simplification).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from labkit.sandbox.apis.accounts import Account, ApplicationProblem
from labkit.sandbox.wire.tls import _write_private, home_lock

log = logging.getLogger("labkit.sandbox")

FILE_NAME = "applications.json"
VERSION = 1


class AccountStore:
    """Reads and writes one account's applications and number links under the sandbox home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / FILE_NAME

    def load(self, account: Account) -> int:
        """Put the stored applications and links into `account`; how many applications were restored.

        An unreadable file is logged and ignored (the sandbox starts with the default application only)."""
        if not self.path.is_file():
            return 0
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            log.warning("could not read %s: starting without the applications it held", self.path)
            return 0
        restored = 0
        for wire in data.get("applications", []) if isinstance(data, dict) else []:
            try:
                if isinstance(wire, dict) and wire.get("id") != account.default_id:
                    account.restore(wire)
                    restored += 1
            except (ApplicationProblem, KeyError, TypeError) as exc:
                log.warning("skipped a stored application (%s): %s", wire.get("id") if isinstance(wire, dict)
                            else "?", exc)
        for link in data.get("numbers", []) if isinstance(data, dict) else []:
            if isinstance(link, dict) and isinstance(link.get("msisdn"), str):
                account.restore_number(link)
        return restored

    def save(self, account: Account) -> None:
        """Write the account's API-made applications and every number link (atomically, 0600)."""
        data: dict[str, Any] = {"version": VERSION, **account.snapshot()}
        try:
            with home_lock(self.home):
                _write_private(self.path, json.dumps(data, indent=2).encode())
        except OSError:
            log.exception("could not save the sandbox's applications to %s", self.path)

    def attach(self, account: Account) -> int:
        """Load, then save after every change the APIs make; how many applications were restored."""
        restored = self.load(account)
        account.on_change = self.save
        return restored
