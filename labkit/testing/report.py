"""What a failing call assertion tells a person: the call's story in a few lines, and the heard audio saved
as a WAV next to the test report (its path printed), so "what did the caller hear instead?" is one click.

The plugin sets where artifacts go (`--vonage-artifacts`, else the folder of `--junitxml`, else
`test-artifacts/` under the rootdir) and the running test's id; outside pytest it is ./test-artifacts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["artifact_dir", "describe_call", "save_heard", "set_context"]

_context: dict[str, Any] = {"dir": None, "test": None}


def set_context(folder: Path | None = None, test: str | None = None) -> None:
    """Where artifacts go and which test runs (the plugin calls this; None leaves a value as it is)."""
    if folder is not None:
        _context["dir"] = Path(folder)
    _context["test"] = test


def artifact_dir() -> Path:
    """The folder for this test's artifacts (made on demand)."""
    base = _context["dir"] or Path.cwd() / "test-artifacts"
    test = _context["test"]
    folder = base / re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")[:150] if test else base
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_heard(call: Any) -> str:
    """Save what the call's phone heard; a sentence to append to the failure message (never raises)."""
    try:
        recording = call.heard
        path = artifact_dir() / f"heard-{call.phone.number}-{call.uuid[:8]}.wav"
        recording.save(path)
        return f"\nWhat the caller heard ({recording.duration:.1f} s) is saved at {path}"
    except Exception as exc:  # the assertion's own message matters more than the artifact
        return f"\n(the heard audio could not be saved: {exc.__class__.__name__}: {exc})"


def _played_line(item: dict) -> str:
    what = item.get("text") or item.get("url") or item.get("digits") or ""
    length = "looping" if item.get("seconds") is None else f"{item['seconds']:.1f} s"
    return f"    {item['at']:6.2f} s  {item['kind']:<6} {what!r} ({length}, {item.get('by')})"


def describe_call(view: dict) -> str:
    """The call in a few lines: status, who ended it, what was played, errors, webhook exchanges."""
    lines = [f"call {view['uuid'][:8]} ({view['direction']}, {_addr(view['from'])} -> {_addr(view['to'])}): status "
             f"{view['status']!r}" + (f", ended by {view['ended_by']}" if view.get("ended_by") else "")]
    played = view.get("played") or []
    lines.append("  played to the caller:" if played else "  nothing was played to the caller")
    lines += [_played_line(item) for item in played]
    for error in view.get("errors") or []:
        lines.append(f"  sandbox error: {error}")
    hooks = view.get("webhooks") or []
    if hooks:
        lines.append("  webhooks (kind, method url -> answer):")
    for hook in hooks[-12:]:
        answer = hook.get("answer")
        if answer is None:
            got = "pending"
        elif answer.get("ok"):
            body = answer.get("body")
            got = f"{answer.get('status')} {_short(body)}" if body is not None else str(answer.get("status"))
        else:
            got = f"failed: {answer.get('error') or answer.get('status')}"
        status = hook["payload"].get("status")
        label = f"{hook['kind']}{'(' + status + ')' if status else ''}"
        lines.append(f"    {label:<18} {hook['method']} {hook['url']} -> {got}")
    return "\n".join(lines)


def _addr(endpoint: dict) -> str:
    return str(endpoint.get("number") or endpoint.get("uri") or endpoint.get("type") or "?")


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
