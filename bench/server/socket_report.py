"""The closing table of bench_socket_server.py: per condition, each server's streams held, CPU per frame and
p99 latency at the highest level every server passed, each as a ratio to the bare server measured in the
same run; then the pacing drift. Only the ratios are comparable between runs on a shared machine."""

from __future__ import annotations

from statistics import median
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


def _median(results: list[Any], attr: str) -> float:
    values = [getattr(r, attr) for r in results if getattr(r, attr) == getattr(r, attr)]
    return float(median(values)) if values else float("nan")


def _paired(mine: list[Any], bare: list[Any]) -> str:
    """Each round's own ratio (runs seconds apart share the machine's state), as the median and range: on a
    shared machine the medians of the two columns can drift apart with the load, the pairs much less."""
    ratios = sorted(a.us_per_frame / b.us_per_frame for a, b in zip(mine, bare, strict=False) if b.us_per_frame)
    if not ratios:
        return ""
    return f" (paired {median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}])"


def table(runs: dict[str, dict], kinds: list[str], pace_seconds: float, cost_level: int) -> str:
    lines = ["", f"condition | server   | streams held | us/frame (median @{cost_level}) | p99 ms (median) | lost "
                 "| vs bare: held, us/frame, p99",
             "----------|----------|--------------|--------------------------|-----------------|------|"
             "-----------------------------"]
    for condition, run in runs.items():
        results: dict[str, list[Any]] = run["results"]
        costs: dict[str, list[Any]] = run.get("costs") or {k: [] for k in kinds}
        bare_n, _ = held(results.get("bare", []))
        bare_us, bare_p99 = _median(costs.get("bare", []), "us_per_frame"), _median(costs.get("bare", []), "p99_ms")
        for k in kinds:
            n, shown = held(results[k])
            us, p99 = _median(costs[k], "us_per_frame"), _median(costs[k], "p99_ms")
            spread = (f" [{min(r.us_per_frame for r in costs[k]):.0f}-{max(r.us_per_frame for r in costs[k]):.0f}]"
                      if costs[k] else "")
            lost = sum(r.lost for r in costs[k]) + sum(r.lost for r in results[k])
            paired = _paired(costs[k], costs.get("bare", []))
            vs = ("(baseline)" if k == "bare"
                  else f"{_ratio(n, bare_n)}, {_ratio(us, bare_us)}, {_ratio(p99, bare_p99)}{paired}")
            lines.append(f"{condition:<9} | {k:<8} | {shown:>12} | {f'{us:.1f}{spread}':>24} | {p99:>15.2f} | "
                         f"{lost:>4} | {vs}")
    lines.append("(>=N: passed the highest level tried; * the client could not keep pace above it; us/frame and "
                 "p99: medians of the interleaved cost rounds [min-max]; paired: the median [min-max] of each round's "
                 "own us/frame ratio, the server's run against bare's run next to it; lost: sent, not in the files, "
                 "all runs)")
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
