"""The closing table of bench_socket_server.py: per condition, each server's streams held, CPU per frame and
p99 latency at the highest level every server passed, each as a ratio to the bare server measured in the
same run; then the pacing drift. Only the ratios are comparable between runs on a shared machine."""

from __future__ import annotations

from typing import Any


def held(results: list[Any]) -> tuple[int, str]:
    """(highest level passed, how to print it)."""
    if not results:
        return 0, "not run"
    top = max((r.n for r in results if r.verdict == "PASS"), default=0)
    last = results[-1]
    if last.verdict == "PASS":
        return top, f">={top}"  # passed the highest level tried
    if last.verdict == "CLIENT-LIMITED":
        return top, f">={top}*"
    return top, f"{top}" if top else f"<{last.n}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "n/a"


def table(runs: dict[str, dict], kinds: list[str], pace_seconds: float) -> str:
    lines = ["", "condition | server   | streams held | us/frame @N | p99 ms @N | vs bare: held, us/frame, p99",
             "----------|----------|--------------|-------------|-----------|------------------------------"]
    for condition, run in runs.items():
        results: dict[str, list[Any]] = run["results"]
        passed = [{r.n for r in results[k] if r.verdict == "PASS"} for k in kinds]
        common = max(set.intersection(*passed), default=None) if passed else None
        at = {k: next((r for r in results[k] if r.n == common and r.verdict == "PASS"), None) for k in kinds}
        bare_n, _ = held(results.get("bare", []))
        bare = at.get("bare")
        for k in kinds:
            n, shown = held(results[k])
            r = at[k]
            us = f"{r.us_per_frame:.1f} @{common}" if r else "-"
            p99 = f"{r.p99_ms:.2f} @{common}" if r else "-"
            vs = "(baseline)" if k == "bare" else (
                f"{_ratio(n, bare_n)}, {_ratio(r.us_per_frame, bare.us_per_frame) if r and bare else 'n/a'}, "
                f"{_ratio(r.p99_ms, bare.p99_ms) if r and bare else 'n/a'}")
            lines.append(f"{condition:<9} | {k:<8} | {shown:>12} | {us:>11} | {p99:>9} | {vs}")
    lines.append("(>=N: passed the highest level tried; * the client could not keep pace above it; @N: the "
                 "highest level every server passed, where CPU and latency are compared)")
    lines += ["", f"pacing over {pace_seconds:g} s | sender              | drift ms | jitter p99 ms | max gap ms | "
                  "stalls | resyncs"]
    names = {"lab": "lab PacedSender", "lab_old_rule": "lab, old rule", "asyncio": "asyncio deadline"}
    for condition, run in runs.items():
        drift = run.get("pacing") or {}
        if "error" in drift:
            lines.append(f"{condition:<9} | pacing run failed: {drift['error']}")
            continue
        for key, name in names.items():
            d = drift.get(key)
            if not d:
                continue
            lines.append(f"{condition:<9} | {name:<19} | {d['drift_ms']:+8.2f} | {d['jitter_p99_ms']:13.2f} | "
                         f"{d['max_gap_ms']:10.1f} | {d.get('stalls', 0):6} | {d.get('resyncs', '-')}")
    return "\n".join(lines)
