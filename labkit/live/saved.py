"""What a live lab changed on the account, saved under LABKIT_HOME before it changes it.

`lab.stop()` puts it back; so does the next start when the kernel that saved it died first (its pid is
gone). One file per application: `LABKIT_HOME/live/application-<id>.json` holding

    {"version": 2, "application_id", "pid",
     "fields": {"answer_url": {"before": <the webhook as found, or null>, "lab": {"address", "http_method"}},
                "signed_callbacks": {"before": false, "lab": true}, ...},
     "voice_added": <the application had no voice capability before>,
     "number": {"msisdn", "country", "lab_app", "before": {"app_id", "voiceCallbackType", ...}} or null}

Field by field, so that stop restores only what the lab changed and only where it still holds the lab's
value (issue 18, item 2). A version-1 file (`{"voice": <capability>}`, from older labkit) is still read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["forget_previous", "load_previous", "save_previous", "saved_path"]


def saved_path(application_id: str) -> Path:
    from labkit.config import state_dir

    return state_dir() / "live" / f"application-{application_id}.json"


def save_previous(application_id: str, record: dict[str, Any]) -> Path:
    """Write `record` (see the module docstring) atomically, stamped with this process's pid."""
    path = saved_path(application_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": 2, **record, "application_id": application_id, "pid": os.getpid()},
                              indent=2))
    os.replace(tmp, path)
    return path


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def load_previous(application_id: str) -> dict[str, Any] | None:
    """The record saved by a lab whose process is gone (a crashed kernel), if any. A lab still running
    (here or in another process) keeps its own: the account as found is then what to restore."""
    path = saved_path(application_id)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or _alive(saved.get("pid")):
        return None
    return saved


def forget_previous(application_id: str) -> None:
    saved_path(application_id).unlink(missing_ok=True)
