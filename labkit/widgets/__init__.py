"""ipywidgets for the lab: the control panel, the sandbox softphone, and a live waveform.

`lab.panel()` is `labkit.widgets.panel(lab)`. Widgets import ipywidgets, so this package loads only
when a panel is asked for.

May import: the lab, the sandbox (a virtual phone's audio), media and the foundations; never the cli.
"""

from __future__ import annotations

from labkit.widgets.panel import ControlPanel, panel
from labkit.widgets.softphone import Softphone, softphone
from labkit.widgets.waveform import LiveWaveform

__all__ = ["ControlPanel", "LiveWaveform", "Softphone", "panel", "softphone"]
