"""The ngrok agent's private config file (the authtoken never goes on a command line) and why it quit.

* pyngrok 9.1.0 passes `PyngrokConfig.auth_token` to the agent as `--authtoken TOKEN`, which any local
  user can read in `ps` for the agent's whole life (and the agent outlives the kernel). So labkit writes
  the token into a config file of its own, mode 0600 under LABKIT_HOME, and points pyngrok at that file
  with `PyngrokConfig(config_path=...)`, leaving `auth_token` empty (pyngrok passes `--config PATH`).
* pyngrok's startup loop reads one line of the agent's output, then stops as soon as the process has
  exited, without reading the lines still in the pipe. An agent that prints its error and quits at once
  (a refused authtoken: ERR_NGROK_105, 4018, 108) can therefore fail with no reason at all, depending on
  how the two processes were scheduled. `startup_error` runs the agent once more and reads its whole
  output, so the reason is always found.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from labkit.config import state_dir

CONFIG_NAME = "ngrok-agent.yml"


def write_config(token: str, base_config: str | os.PathLike | None = None) -> Path:
    """Write the agent's config (the user's `base_config` if any, plus `agent.authtoken`), mode 0600."""
    import yaml

    data: dict[str, Any] = {}
    if base_config and Path(base_config).is_file():
        try:
            loaded = yaml.safe_load(Path(base_config).read_text())
        except (OSError, yaml.YAMLError):
            loaded = None
        data = loaded if isinstance(loaded, dict) else {}
    data.setdefault("version", "3")
    if str(data["version"]) == "3":
        agent = data.get("agent") if isinstance(data.get("agent"), dict) else {}
        data["agent"] = {**agent, "authtoken": token}
    else:  # a version 2 file keeps its settings at the top level
        data["authtoken"] = token
    folder = state_dir() / "ngrok"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file left by an older version may have had wider rights
        with os.fdopen(fd, "w") as handle:
            fd = -1
            yaml.safe_dump(data, handle)
    finally:
        if fd >= 0:
            os.close(fd)
    return path


def startup_error(ngrok_path: str, config_path: str | None, timeout: float):
    """Run the agent once more and read all it prints until it exits: a PyngrokNgrokError carrying the
    reason it quit (or None if it did not quit within `timeout`, or printed no error)."""
    from pyngrok.exception import PyngrokNgrokError
    from pyngrok.log import NgrokLog

    argv = [ngrok_path, "start", "--none", "--log", "stdout"]
    if config_path:
        argv += ["--config", config_path]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    except OSError:
        return None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # it came up this time: not what we are diagnosing
        proc.kill()
        proc.communicate()
        return None
    logs = [NgrokLog(line) for line in out.splitlines() if line.strip()]
    errors = [log.err for log in logs if log.lvl in ("ERROR", "CRITICAL") and log.err]
    if not errors:
        return None
    return PyngrokNgrokError(f"The ngrok process errored on start: {errors[-1]}.", logs, errors[-1])
