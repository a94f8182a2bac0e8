"""A call's life on one time axis: status changes as markers; the NCCO's actions, REST streams and
talks, and WebSockets as bars.

The event log is the only source: webhook events give the statuses; the NCCOs the lab served
("ncco-served" lab events) give the script's talk, stream, input, record, connect and conversation
bars (timed by `labkit.lab.ncco_timing`); the lab's own "lab" events
(`stream-started`, `stream-stopped`, `talk-started`, `talk-stopped`, written by `Call` after each
successful REST request) and the WebSocket's "socket" events give the spans. The platform does not
report when a REST stream or talk finishes by itself, so such a span ends at the first of: its stop
request, a replacing start, the end of the call, or (for a file the lab serves) its length times
`loop`; a span still running when the picture is drawn fades out at the right edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.events import FINAL_STATUSES, Event
from labkit.lab.ncco_timing import script_spans
from labkit.readable import is_websocket_leg

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Span", "call_timeline", "spans"]

STATUS_COLOURS = {
    "started": "#9e9e9e", "ringing": "#f0a30a", "answered": "#2e7d32", "completed": "#212121",
    "disconnected": "#6d4c41", "input": "#1565c0", "record": "#c62828", "error": "#d50000",
}
FAILED_COLOUR = "#d50000"
SPAN_COLOURS = {"stream": "#1f77b4", "talk": "#9467bd", "websocket": "#17becf", "input": "#ff7f0e",
                "record": "#d62728", "connect": "#2ca02c", "conversation": "#8c564b", "notify": "#7f7f7f"}
# Where each kind of bar sits under a leg's row of status dots (row y + offset, bar height).
LANES = {"script": (0.06, 0.16), "background": (-0.12, 0.12), "rest": (-0.28, 0.12), "websocket": (-0.42, 0.08)}
LANE_NAMES = {"script": "NCCO", "background": "NCCO beside it (record, bargeIn)", "rest": "REST",
              "websocket": "WebSocket"}


@dataclass
class Span:
    """One stretch of audio activity on a call, in seconds from the timeline's start."""

    uuid: str
    kind: str  # "stream" | "talk" | "websocket"
    start: float
    end: float | None  # None: still running when drawn
    label: str
    estimated: bool = False  # the end comes from the file's length, not from an event


def _seconds(events: list[Event]) -> tuple[datetime, dict[int, float]]:
    t0 = min(e.received_at for e in events)
    return t0, {e.seq: (e.received_at - t0).total_seconds() for e in events}


def play_seconds_from(audio_path: Callable[[str], Path] | None) -> Callable[[Any], float | None]:
    """Length of one play of a served file, found by `audio_path` (the lab's `lab.audio_path`); None
    when unknown: URLs, or no `audio_path` given. The caller passes the lab's lookup in, so drawing a
    timeline never reaches up for a running lab."""

    def play_seconds(name: Any) -> float | None:
        if audio_path is None or not isinstance(name, str) or "://" in name:
            return None
        try:
            from labkit.media.audio import probe

            info = probe(audio_path(name))
            return float(info.duration) if info.duration else None
        except Exception:  # noqa: BLE001 - a picture must not fail for want of a duration
            return None

    return play_seconds


def spans(events: Iterable[Event], play_seconds: Callable[[Any], float | None] | None = None) -> list[Span]:
    """The stream, talk and WebSocket spans in `events` (times relative to the first event); a looped
    stream's end is estimated from `play_seconds(file)` when given (see `play_seconds_from`)."""
    play_seconds = play_seconds or play_seconds_from(None)
    items = sorted(events, key=lambda e: e.seq)
    if not items:
        return []
    _, at = _seconds(items)
    ends: dict[str, float] = {}
    for e in items:
        if e.kind == "event" and e.status in FINAL_STATUSES and e.uuid:
            ends.setdefault(e.uuid, at[e.seq])
    out: list[Span] = []
    open_: dict[tuple[str, str], Span] = {}

    def close(key: tuple[str, str], t: float) -> None:
        span = open_.pop(key, None)
        if span is not None and (span.end is None or t < span.end):
            span.end, span.estimated = max(t, span.start), False

    for e in items:
        uuid = e.uuid or "?"
        t = at[e.seq]
        status = e.status or ""
        kind = status.split("-")[0]
        lab_span = e.kind == "lab" and kind in ("stream", "talk")  # "stream-started", "talk-stopped"...
        if lab_span and status.endswith("-started"):
            close((uuid, kind), t)  # a new stream/talk replaces the one playing
            label = str(e.payload.get("file") or e.payload.get("text") or kind)
            loop = e.payload.get("loop", 1)
            span = Span(uuid, kind, t, None, _short(label))
            if kind == "stream" and isinstance(loop, int) and loop > 0:
                one = play_seconds(e.payload.get("file"))
                if one:
                    span.end, span.estimated = t + one * loop, True
            out.append(span)
            open_[(uuid, kind)] = span
        elif lab_span and status.endswith("-stopped"):
            close((uuid, kind), t)
        elif e.kind == "socket" and e.payload.get("event") == "websocket:connected":
            rate = str(e.payload.get("content-type", "")).rpartition("=")[2]
            span = Span(uuid, "websocket", t, None, f"{int(rate) // 1000} kHz" if rate.isdigit() else "audio")
            out.append(span)
            open_[(uuid, "websocket")] = span
        elif e.kind == "socket" and status == "socket-closed":
            close((uuid, "websocket"), t)
    for (uuid, _kind), span in list(open_.items()):
        if uuid in ends and ends[uuid] >= span.start:
            if span.end is None or ends[uuid] < span.end:
                span.end, span.estimated = ends[uuid], False
    return out


def _short(text: str, n: int = 28) -> str:
    text = text.rsplit("/", 1)[-1] if "://" in text else text
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def call_timeline(events: Iterable[Event], ax: Axes | None = None, *, title: str | None = None,
                  audio_path: Callable[[str], Path] | None = None) -> Figure:
    """Draw `events` (one call's, or a whole lab's) on one time axis; one row per call leg.

    Each leg's row shows its statuses as labelled markers and, just under it, its streams, talks and
    WebSocket as bars. Returns the figure (displayed when it is a cell's last value). `audio_path` finds a
    served file (`lab.audio_path`), so a stream's bar ends when its file would; `call.timeline()` and
    `lab.timeline()` pass it.
    """
    import matplotlib.pyplot as plt

    items = sorted(events, key=lambda e: e.seq)
    if ax is None:
        legs = {e.uuid for e in items if e.uuid} or {"?"}
        fig, ax = plt.subplots(figsize=(10, 1.2 + 1.4 * len(legs)), layout="constrained")
        plt.close(fig)  # the caller owns it: shown once when returned from a cell
    else:
        fig = ax.figure
    if not items:
        ax.text(0.5, 0.5, "no events yet: place or receive a call first", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        ax.set_axis_off()
        return fig
    t0, at = _seconds(items)
    now = max(at.values())
    play_seconds = play_seconds_from(audio_path)
    all_spans = spans(items, play_seconds)
    ends = {e.uuid: at[e.seq] for e in reversed(items)
            if e.kind == "event" and e.status in FINAL_STATUSES and e.uuid}
    script = script_spans(items, at, ends, play_seconds)
    right = max([now] + [s.end for s in [*all_spans, *script] if s.end is not None])
    right = max(right, 1.0)

    order: list[str] = []
    for e in items:
        if e.uuid and e.uuid not in order:
            order.append(e.uuid)
    rows = {uuid: i for i, uuid in enumerate(reversed(order))}
    label_y = {}
    ticks: list[tuple[float, str]] = []
    for uuid, row in rows.items():
        y = row * 1.0
        label_y[uuid] = y
        leg_events = [e for e in items if e.uuid == uuid and e.kind == "event" and e.status]
        direction = next((e.payload.get("direction") for e in leg_events if e.payload.get("direction")), "")
        ax.hlines(y + 0.3, 0, right, color="0.85", linewidth=1, zorder=0)
        level, last_x = 0, None
        for e in leg_events:
            colour = STATUS_COLOURS.get(e.status or "", FAILED_COLOUR if e.status in FINAL_STATUSES else "#555")
            x = at[e.seq]
            ax.plot([x], [y + 0.3], marker="o", markersize=8, color=colour, zorder=3)
            detail = e.payload.get("detail")
            if e.status == "input" and isinstance(e.payload.get("dtmf"), dict):
                detail = e.payload["dtmf"].get("digits")
            text = f"{e.status}" + (f" ({detail})" if detail else "")
            # Labels of markers that nearly touch are stacked instead of printed over each other.
            level = (level + 1) % 3 if last_x is not None and x - last_x < right * 0.07 else 0
            last_x = x
            ax.annotate(text, (x, y + 0.3), xytext=(0, 8 + 9 * level), textcoords="offset points",
                        fontsize=8, rotation=0, ha="center", color=colour)
        for e in items:
            if e.uuid != uuid:
                continue
            if e.kind == "socket" and e.payload.get("event") == "websocket:dtmf":
                ax.plot([at[e.seq]], [y + 0.3], marker="D", color="#1565c0", markersize=5, zorder=3)
                ax.annotate(f"key {e.payload.get('digit', '')}", (at[e.seq], y + 0.3), xytext=(0, -12),
                            textcoords="offset points", fontsize=7, ha="center", color="#1565c0")
            if e.kind == "lab" and "error" in (e.status or ""):
                ax.plot([at[e.seq]], [y + 0.3], marker="X", color=FAILED_COLOUR, markersize=9, zorder=4)
        if any(is_websocket_leg(e.payload) for e in leg_events):
            direction = "WebSocket leg"  # the leg a connect to a WebSocket adds, named as such
        ticks.append((y, f"{uuid[:8]}\n{direction}".strip()))

    bars = [(s, "websocket" if s.kind == "websocket" else "rest") for s in all_spans]
    bars += [(s, "background" if s.background else "script") for s in script]
    used: set[str] = set()
    for span, lane in bars:
        offset, height = LANES[lane]
        y = label_y.get(span.uuid, 0.0) + offset
        used.add(lane)
        end = span.end if span.end is not None else right
        colour = SPAN_COLOURS.get(span.kind, "#555")
        width = max(end - span.start, right * 0.003)
        ax.broken_barh([(span.start, width)], (y - height / 2, height), facecolors=colour,
                       alpha=0.45 if span.end is None or span.estimated else 0.8,
                       hatch="//" if span.end is None else None, edgecolor=colour, zorder=2)
        suffix = " \u2192" if span.end is None else (" \u2248" if span.estimated else "")
        ax.text(span.start + width / 2, y, f"{span.kind}: {span.label}{suffix}", ha="center", va="center",
                fontsize=7, color="black", zorder=5, clip_on=True)
    if script or all_spans:
        lanes = " / ".join(LANE_NAMES[lane] for lane in LANES if lane in used)
        ax.text(1.0, 1.01, f"bars, top down: {lanes}; \u2248 length estimated, \u2192 still running",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.45")

    ax.set_xlim(-right * 0.02, right * 1.04)
    ax.set_ylim(-0.5, len(rows) - 0.2)
    ax.set_yticks([y for y, _ in ticks], [text for _, text in ticks], fontsize=8, family="monospace")
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"seconds since {t0:%H:%M:%S} UTC")
    ax.grid(True, axis="x", alpha=0.25)
    ax.set_title(title or _title(items), loc="left", fontsize=10)
    return fig


def _title(items: list[Event]) -> str:
    legs = {e.uuid for e in items if e.uuid}
    statuses = [e.status for e in items if e.kind == "event" and e.status]
    last = statuses[-1] if statuses else "no status yet"
    what = f"call {next(iter(legs))[:8]}" if len(legs) == 1 else f"{len(legs)} call legs"
    return f"{what}: {len(items)} events, last status {last}"
