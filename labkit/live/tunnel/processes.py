"""The ngrok agents labkit started: a process-wide registry that survives `importlib.reload`, the pid file
in the state directory that lets `labkit tunnel kill` find agents left by a kernel that died, and
`kill_agents`. Also the log filter that keeps authtokens out of pyngrok's copies of the agent's lines.

Used by labkit.live.tunnel.tunnel (the Tunnel), which starts agents through pyngrok; labkit.live.tunnel.agent holds the
agent's config file and why it quit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

from labkit.config import state_dir
from labkit.live.tunnel.errors import redact

__all__ = ["agent_registry", "forget_agent", "kill_agents", "protect_secret", "remember_agent"]

_REGISTRY_MODULE = "labkit._tunnel_registry"
_PIDFILE = "ngrok-agents.json"


# --------------------------------------------------------------------------- process-wide state


def agent_registry() -> types.ModuleType:
    """State shared by every Tunnel in this process, surviving `importlib.reload(labkit.live.tunnel.tunnel)`.

    Module globals are rebuilt on reload; an entry in `sys.modules` under its own name is not.
    """
    registry = sys.modules.get(_REGISTRY_MODULE)
    if registry is None:
        fresh = types.ModuleType(_REGISTRY_MODULE, "labkit.live.tunnel.tunnel's process-wide state (do not import)")
        fresh.lock = threading.RLock()  # type: ignore[attr-defined]
        fresh.agents = {}  # type: ignore[attr-defined]  # ngrok_path -> pid of the agent we started
        fresh.secrets = set()  # type: ignore[attr-defined]  # authtokens to redact from pyngrok's logs
        fresh.log_filter = None  # type: ignore[attr-defined]
        registry = sys.modules.setdefault(_REGISTRY_MODULE, fresh)  # atomic: first one wins
    return registry


class _RedactSecrets(logging.Filter):
    """Replace authtokens in pyngrok's copies of the agent's log lines (ERR_NGROK_105 echoes the token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = agent_registry().secrets
        if secrets:
            message = record.getMessage()
            redacted = redact(message, secrets)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def protect_secret(token: str | None) -> None:
    registry = agent_registry()
    if not token:
        return
    with registry.lock:
        registry.secrets.add(token)
        if registry.log_filter is None:
            registry.log_filter = _RedactSecrets()
            logging.getLogger("pyngrok.process.ngrok").addFilter(registry.log_filter)


# --------------------------------------------------------------------------- agent pid file


def _pidfile() -> Path:
    return state_dir() / _PIDFILE


def _read_agents() -> list[dict[str, Any]]:
    try:
        data = json.loads(_pidfile().read_text())
    except (OSError, ValueError):
        return []
    return [entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("pid"), int)]


def _write_agents(entries: list[dict[str, Any]]) -> None:
    path = _pidfile()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, path)
    except OSError:  # the pid file is a convenience for `labkit tunnel kill`, never a reason to fail
        tmp.unlink(missing_ok=True)


def remember_agent(pid: int, ngrok_path: str) -> None:
    entries = [entry for entry in _read_agents() if entry["pid"] != pid and _pid_alive(entry["pid"])]
    entries.append({"pid": pid, "ngrok_path": ngrok_path, "owner": os.getpid(), "started": time.time()})
    _write_agents(entries)


def forget_agent(pid: int | None) -> None:
    entries = _read_agents()
    kept = [entry for entry in entries if entry["pid"] != pid and _pid_alive(entry["pid"])]
    if kept != entries:
        _write_agents(kept)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _reap(pid)


def _reap(pid: int) -> bool:
    """Collect `pid` if it is our own exited child (a zombie still answers kill(pid, 0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _looks_like_agent(pid: int) -> bool:
    """True if `pid` runs `... start --none --log ...`, the command line pyngrok starts the agent with.

    Guards against killing an unrelated process that reused a recorded pid.
    """
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        try:
            out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True,
                                 timeout=5, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        args = out.split()
    return "start" in args and "--none" in args and "--log" in args


def _terminate(pid: int, grace: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds; True once the process is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.05)
    return not _pid_alive(pid)


def kill_agents() -> list[int]:
    """Stop every ngrok agent labkit started: this process's, and any left by kernels that died.

    Returns the pids that were stopped. Only processes whose command line is an agent's are touched.
    """
    from pyngrok import ngrok, process
    from pyngrok.conf import PyngrokConfig

    stopped: list[int] = []
    registry = agent_registry()
    with registry.lock:
        for path, pid in list(registry.agents.items()):
            if process.is_process_running(path):
                ngrok.kill(PyngrokConfig(ngrok_path=path))  # pyngrok kills and reaps its child
                stopped.append(pid)
            registry.agents.pop(path, None)
        for entry in _read_agents():
            pid = entry["pid"]
            if pid in stopped or not _pid_alive(pid):
                continue
            if _looks_like_agent(pid) and _terminate(pid):
                stopped.append(pid)
        _write_agents([entry for entry in _read_agents()
                       if entry["pid"] not in stopped and _pid_alive(entry["pid"])])
    return stopped
