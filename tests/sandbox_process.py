"""Test harness: `labkit sandbox` in a real separate process, plus a minimal control channel.

Run as `python tests/sandbox_process.py [labkit sandbox flags]`. It runs the real command
(`labkit.cli.main(["sandbox", ...])`: the same start, printout, signals and stop as a user gets) and,
because the sandbox's own HTTP control surface (`/_labkit/`, issue 8) does not exist yet, it also
serves a `multiprocessing.managers` channel on 127.0.0.1 through which tests drive and inspect the
virtual phones (ring, answer, speak, press keys, what they heard). The lab under test never uses this
channel: it reaches the sandbox through the Voice, Application and Numbers APIs only.

The first stdout line is `CONTROL <port> <authkey hex>`; the command's own printout follows.
"""

from __future__ import annotations

import secrets
import sys
import threading
from multiprocessing.managers import BaseManager
from typing import Any

_captured: dict[str, Any] = {}
_ready = threading.Event()


class Control:
    """What the tests may do to the phones (all results picklable)."""

    def _sb(self) -> Any:
        if not _ready.wait(30):
            raise RuntimeError("the sandbox did not start")
        return _captured["sandbox"]

    def set_phone(self, number: str, **behaviour: Any) -> None:
        self._sb().phone(number).set(**behaviour)

    def dial(self, from_number: str, to: str | None = None) -> str:
        return self._sb().dial(from_number, to).uuid

    def press(self, number: str, digits: str) -> None:
        self._sb().phone(number).press(digits)

    def say(self, number: str, path: str) -> None:
        self._sb().phone(number).say(path)

    def speaking(self, number: str) -> bool:
        return bool(self._sb().phone(number).speaking)

    def heard_in(self, number: str, call_uuid: str) -> tuple[Any, int]:
        rec = self._sb().phone(number).heard_in(call_uuid)
        return rec.samples, rec.rate

    def chaos_seen(self) -> tuple[int, int]:
        """(status events delivered twice, status events sent before one that happened earlier)."""
        import json

        records = [r for r in self._sb().webhook_log if r.kind == "event" and r.payload.get("status")]
        keys = [json.dumps(r.payload, sort_keys=True) for r in records]
        twice = len(keys) - len(set(keys))
        overtakes, last = 0, {}
        for r in sorted(records, key=lambda r: r.sent_at):
            uuid, stamp = r.payload.get("uuid"), r.payload.get("timestamp", "")
            if uuid in last and stamp < last[uuid]:
                overtakes += 1
            last[uuid] = max(stamp, last.get(uuid, ""))
        return twice, overtakes

    def call_statuses(self) -> dict[str, str]:
        return {leg.uuid: leg.status for leg in self._sb().calls}


class _Manager(BaseManager):
    pass


def main(argv: list[str]) -> int:
    import labkit.sandbox
    from labkit.cli import main as labkit_main

    original_start = labkit.sandbox.Sandbox.start

    def start(self: Any) -> Any:
        result = original_start(self)
        _captured["sandbox"] = self
        _ready.set()
        return result

    labkit.sandbox.Sandbox.start = start  # type: ignore[method-assign]
    control = Control()
    _Manager.register("control", callable=lambda: control)
    authkey = secrets.token_bytes(16)
    manager = _Manager(address=("127.0.0.1", 0), authkey=authkey)
    server = manager.get_server()
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    print(f"CONTROL {server.address[1]} {authkey.hex()}", flush=True)
    return labkit_main(["sandbox", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
