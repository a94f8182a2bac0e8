"""`labkit sandbox` (the real command) in a separate process, as a user or a CI service runs it.

It starts the console script `labkit sandbox --port 0 ...`, reads what it printed (the banner's rows:
base URL, CA, application id, key, number, API key and secret, ...), and stops it with SIGTERM as
Ctrl-C would. Callers then reach it only as any app or test in another language would: the Voice,
Application and Numbers APIs, and the control API (`/_labkit/`) through `remote`
(`labkit.sandbox.connect(url)`) or plain HTTP. There is no other channel into the process.

Used by the pytest plugin's `vonage_sandbox` (the default, process mode) and the project's own tests.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labkit.errors import SandboxError

__all__ = ["READY", "SandboxProcess", "labkit_command"]

READY = "Press Ctrl-C to stop."
ROW = re.compile(r"^  (\S.{16}) (\S.*)$")  # the banner's rows: f"  {label:<17} {value}", up to a blank line


def labkit_command() -> list[str]:
    """The `labkit` console script of this environment (what `pip install` made), else `python -m`."""
    script = Path(sys.executable).with_name("labkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "labkit.cli"]


class SandboxProcess:
    """`labkit sandbox --port 0 --speed S --home H FLAGS...` in its own process.

    `rows` holds the banner's rows by label ("base URL", "CA certificate", "application id", ...),
    `url` the base URL, `ca` the CA certificate, `bundle` the CA bundle the Python SDK is told to use.
    """

    def __init__(self, home: Path, *flags: str, speed: float = 10.0, env: dict[str, str] | None = None,
                 timeout: float = 60.0, wrapper: list[str] | tuple[str, ...] = ()) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        # `wrapper`: a command that execs the sandbox (e.g. setpriv to run it as another user), same pid
        cmd = [*wrapper, *labkit_command(), "sandbox", "--port", "0", "--speed", str(speed), "--home", str(self.home),
               *flags]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.stderr_path = self.home / "sandbox-stderr.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=full_env)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, name="sandbox-stdout", daemon=True).start()  # never a full pipe
        self.rows = self._read_banner(timeout)
        self.url = self.rows["base URL"]
        self.host = self.url.split("://", 1)[1]
        self.ca = self.rows.get("CA certificate")
        self.bundle = self.rows.get("CA bundle")
        self._remote: Any = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_banner(self, timeout: float) -> dict[str, str]:
        rows: dict[str, str] = {}
        in_rows = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            in_rows = in_rows and bool(line.strip())
            match = ROW.match(line.rstrip("\n")) if in_rows else None
            if match:
                rows[match.group(1).strip()] = match.group(2).split("  ")[0].strip()
            if READY in line:
                return rows
        self.proc.kill()
        self.proc.wait(5)
        self._stderr.close()
        raise SandboxError(f"`labkit sandbox` did not print {READY!r}; it printed:\n{''.join(self.output)}\n"
                             f"stderr:\n{self.stderr_path.read_text()}")

    @property
    def remote(self) -> Any:
        """`labkit.sandbox.connect(url)`: the control API's Python client (phones, calls, webhooks)."""
        if self._remote is None:
            from labkit.sandbox import connect

            self._remote = connect(self.url, verify=self.ca if self.ca else True)
        return self._remote

    def stop(self, timeout: float = 20.0) -> str:
        """SIGTERM (as Ctrl-C); the whole printout. SandboxError if it does not stop or exits non-zero."""
        if self._remote is not None:
            self._remote.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise SandboxError("labkit sandbox did not stop on SIGTERM") from None
        finally:
            self._stderr.close()
        while True:  # the reader ends at EOF, which comes with the exit
            line = self._lines.get(timeout=5)
            if line is None:
                break
            self.output.append(line)
        out = "".join(self.output)
        if self.proc.returncode != 0:
            raise SandboxError(f"labkit sandbox exited {self.proc.returncode}:\n{out}")
        return out
