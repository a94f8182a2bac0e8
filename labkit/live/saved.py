"""What a live lab changed on the account, saved under LABKIT_HOME before it changes it.

`lab.stop()` puts it back; so does the next start when the kernel that saved it died first (its pid is
gone). One file per application and process, `LABKIT_HOME/live/application-<id>-<pid>.json`, so that two
kernels on one application never overwrite each other's record, holding

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


def saved_path(application_id: str, pid: int | None = None) -> Path:
    """This process's record for the application (or process `pid`'s)."""
    from labkit.config import state_dir

    return state_dir() / "live" / f"application-{application_id}-{os.getpid() if pid is None else pid}.json"


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


def load_previous(application_id: str) -> list[tuple[Path, dict[str, Any]]]:
    """The records saved by labs whose process is gone (crashed kernels), newest first: putting them back
    in that order unwinds them, since each is put back only where its own values are still there. A lab
    still running (here or in another process) keeps its own."""
    folder = saved_path(application_id).parent
    found = []
    for path in folder.glob(f"application-{application_id}*.json"):  # `-<pid>`, or the single file of earlier versions
        try:
            saved = json.loads(path.read_text())
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and not _alive(saved.get("pid")):
            found.append((mtime, path, saved))
    return [(path, saved) for _mtime, path, saved in sorted(found, key=lambda item: item[0], reverse=True)]


def forget_previous(application_id: str, path: Path | None = None) -> None:
    """Delete this process's record (or the one at `path`, once put back)."""
    (path or saved_path(application_id)).unlink(missing_ok=True)
