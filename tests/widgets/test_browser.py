"""The control panel in a real browser: JupyterLab + Debian chromium, driven by Playwright.

Runs `notebooks/07_control_panel.ipynb` in JupyterLab, clicks Call, answers on the softphone, toggles
the stream, checks the waveform image changes, hangs up, and saves screenshots to test-artifacts/.
Then `notebooks/08_hear_and_talk.ipynb`: double-click Call, a trace for every button, Listen (the
page's audio graph gets the call's audio) and Talk (chromium's fake microphone plays a WAV from
audio/, and the virtual phone hears it), the newest of many events in view, and the audio delays.
JupyterLab runs in its own process group and is torn down with every process it started.

Needs /usr/bin/chromium (`make test` installs it; never `playwright install`, which downloads a browser).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.audio_checks import assert_live_voice_heard

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/07_control_panel.ipynb"
AUDIO_NOTEBOOK = "notebooks/08_hear_and_talk.ipynb"
MIC_WAV = ROOT / "audio" / "prompt.wav"  # what chromium's fake microphone says, over and over
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# JupyterLab settings for a quiet, read-only session: no news toast, and no autosave, so running the
# notebook never writes outputs into the repository's copy.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def button_name(text: str) -> re.Pattern:
    """A button's accessible name: its description after the icon glyph (Font Awesome adds one)."""
    return re.compile(rf"^\W*{re.escape(text)}\s*$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (kernels run in their own sessions, so killpg misses them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def jupyter(tmp_path) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on a free port (base URL, token); everything it started dies afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is missing ({CHROMIUM}): run `make test`, whose system-deps target "
                    "installs it (or `apt-get install -y chromium`). Never `playwright install`.")
    port, token = _free_port(), secrets.token_hex(16)
    settings_dir = tmp_path / "settings"
    for name, values in SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "LABKIT_MODE": "sandbox",
           "LABKIT_SANDBOX_SPEED": "1",  # a person's real time: a 2x call cannot carry a live microphone
           "LABKIT_HOME": str(tmp_path / "labkit-home")}
    originals = {path: path.read_bytes() for path in (ROOT / "notebooks").glob("*.ipynb")}
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         f"--LabApp.user_settings_dir={settings_dir}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
         "--LabApp.extension_manager=readonly",  # the default "pypi" manager would query the index
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    started: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n"
                            + (tmp_path / "jupyter.log").read_text()[-3000:])
            try:
                if requests.get(f"{base}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyter lab did not answer within 60 s")
            time.sleep(0.2)
        yield base, token
    finally:
        started = _descendants(proc.pid)
        try:  # shut kernels down politely first: they live in their own process groups
            for kernel in requests.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json():
                requests.delete(f"{base}/api/kernels/{kernel['id']}", params={"token": token}, timeout=10)
        except (requests.RequestException, ValueError):
            pass
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
        for pid in started:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        log.close()
        changed = [path.name for path, data in originals.items() if path.read_bytes() != data]
        for path, data in originals.items():
            if path.read_bytes() != data:
                path.write_bytes(data)
        leftovers = [pid for pid in [proc.pid, *started] if _alive(pid)]
        assert proc.returncode is not None and not leftovers, f"processes left running: {leftovers}"
        assert not changed, f"the browser session wrote into {changed} (restored them)"


def screenshots(prefix: str):
    """`shot(page, name)`: the whole window, and the panel with its softphone (JupyterLab scrolls inside
    its own pane), into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)

    def shot(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{prefix}-{name}.png"))
        widgets = page.locator(".labkit-panel").first.locator("xpath=..")
        if widgets.count():
            widgets.screenshot(path=str(ARTIFACTS / f"{prefix}-{name}-panel.png"))

    return shot


def run_all(page, url: str):
    """Open a notebook in JupyterLab, Run All, and return its first control panel, in view."""
    page.goto(url)
    # Clicking Run All before the kernel is idle was flaky (stack notes): wait for it.
    page.get_by_text("| Idle").first.wait_for(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator('[data-command="runmenu:run-all"]').click()
    panel = page.locator(".labkit-panel").first
    panel.wait_for(state="attached", timeout=60_000)
    panel.scroll_into_view_if_needed()
    return panel


def test_control_panel_in_jupyterlab(jupyter):
    from playwright.sync_api import expect, sync_playwright

    base, token = jupyter
    digest = hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest()

    shot = screenshots("browser")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            panel = run_all(page, f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            status = panel.locator(".labkit-status")
            phone = page.locator(".labkit-softphone").first
            phone_state = phone.locator(".labkit-phone-state")
            expect(status).to_have_text("no call", timeout=10_000)
            shot(page, "1-panel")

            panel.get_by_role("button", name=button_name("Call")).click()
            expect(phone_state).to_have_text("ringing", timeout=30_000)
            shot(page, "2-ringing")
            phone.get_by_role("button", name=button_name("Answer")).click()
            expect(status).to_have_text("answered", timeout=30_000)
            expect(phone_state).to_have_text("answered", timeout=10_000)
            shot(page, "3-answered")

            # Let the greeting pass: the live waveform then shows only silence.
            waveform = panel.locator("img.labkit-waveform")
            caption = panel.locator(".labkit-waveform-caption")
            expect(caption).to_contain_text("peak silence", timeout=30_000)
            before = waveform.get_attribute("src")
            panel.get_by_role("button", name=button_name("Stream")).click()
            expect(panel.get_by_role("button", name=button_name("Stop stream"))).to_be_visible(timeout=10_000)
            page.wait_for_function(
                "([img, before]) => img.getAttribute('src') !== before",
                arg=[waveform.element_handle(), before], timeout=15_000)
            expect(caption).to_contain_text("dBFS", timeout=15_000)
            expect(phone.locator(".labkit-waveform-caption")).to_contain_text("dBFS", timeout=15_000)
            expect(panel.locator(".labkit-events")).to_contain_text("stream-started", timeout=10_000)
            shot(page, "4-streaming")

            panel.get_by_role("button", name=button_name("Stop stream")).click()
            expect(panel.locator(".labkit-events")).to_contain_text("stream-stopped", timeout=10_000)
            panel.get_by_role("button", name=button_name("Hang up")).click()
            expect(status).to_have_text("completed", timeout=30_000)
            expect(phone_state).to_have_text("idle", timeout=10_000)
            assert panel.locator(".labkit-error").inner_text().strip() == ""
            shot(page, "5-completed")
        except Exception:
            shot(page, "failure")  # what the page looked like when the step failed
            (ARTIFACTS / "browser-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
    assert hashlib.sha256((ROOT / NOTEBOOK).read_bytes()).hexdigest() == digest


def _kernel(base: str, token: str, runtime: Path, notebook: str):
    """A client of the notebook's own kernel (as a second front end), to read what the page cannot show."""
    from jupyter_client import BlockingKernelClient

    sessions = requests.get(f"{base}/api/sessions", params={"token": token}, timeout=10).json()
    kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"].endswith(Path(notebook).name))
    client = BlockingKernelClient(connection_file=str(runtime / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()

    def run(code: str) -> dict:
        out: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = client.execute_interactive(code, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(out)
        return json.loads("".join(out).strip().splitlines()[-1])

    return client, run


def talk_and_measure(page, kernel, audio, root, name: str) -> dict:
    """Talk for 5 s (chromium's fake microphone says MIC_WAV over and over), then what the phone heard of it,
    and the delays of both directions by stage, as the page and the kernel measured them on this way."""
    from playwright.sync_api import expect

    # The phone's own speech over first: the page plays it, and the browser's echo canceller (asked for by
    # the page) would take the same WAV on the microphone for its echo
    kernel("""import time
t = time.monotonic()
while panel.softphone.phone.speaking and time.monotonic() - t < 10:
    time.sleep(0.05)
print(0)""")
    mark = kernel("import json; print(json.dumps(panel.softphone.phone.position))")
    sent = int(root.get_attribute("data-mic-frames") or 0)
    audio.locator(".labkit-talk").click()
    expect(audio.locator(".labkit-audio-status")).to_contain_text("the call hears your microphone", timeout=15_000)
    page.wait_for_function(f"el => Number(el.dataset.micFrames) > {sent + 250}", arg=root, timeout=30_000)
    audio.locator(".labkit-talk").click()
    assert audio.locator(".labkit-audio-error").inner_text().strip() == ""
    figures = kernel(f"""
import json, time
from labkit.media import Recording
time.sleep(0.5)  # the last paced frames
heard = panel.softphone.phone.heard_since({mark})
said = Recording({str(MIC_WAV)!r})
# the best copy of each quarter second: the microphone loops the file, and a live path may drop or cut a
# frame after a stall; one clean copy of each piece is what "the phone heard the WAV" means (silent
# quarters of the file are not scored)
import numpy as np
starts = [a for a in np.arange(0.2, 1.66, 0.25) if said.rms(a, a + 0.25) > 0.01]
pieces = [heard.correlate(said.segment(a, a + 0.25)) for a in starts]
print(json.dumps({{"correlation": min(pieces), "pieces": [round(p, 3) for p in pieces],
                  "whole_file": heard.correlate(said.segment(0.2, 1.9)),
                  "heard_s": heard.duration, "audio_path": panel.audio.audio_path,
                  "mic_frames": panel.audio.mic_frames, "mic_delay_ms": panel.audio.mic_delay_ms,
                  "mic_delay_parts": panel.audio.mic_delay_parts,
                  "speaker_queue_target_ms": panel.audio.speaker_queue_target_ms,
                  "speaker_restarts": panel.audio.speaker_restarts,
                  "speaker_delay_ms": panel.audio.speaker_delay_ms, "frames_played": panel.audio.frames_played,
                  "speaker_delay_parts": panel.audio.speaker_delay_parts,
                  "mic_frames_dropped": panel.audio.mic_frames_dropped,
                  "frames_dropped": panel.audio.frames_dropped}}))
""")
    figures["page_audio_clock_ratio"] = float(root.get_attribute("data-clock-ratio") or "nan")
    heard_wav = str(ARTIFACTS / f"audio-heard-{name}.wav")  # what the phone heard while we talked
    kernel(f"import json; panel.softphone.phone.heard_since({mark}).save({heard_wav!r}); print(0)")
    return figures


def test_hear_and_talk_in_jupyterlab(jupyter, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token = jupyter
    media_args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={MIC_WAV}", "--autoplay-policy=no-user-gesture-required"]

    shot = screenshots("audio")

    client = None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + media_args, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        try:
            panel = run_all(page, f"{base}/lab/tree/{AUDIO_NOTEBOOK}?token={token}")
            status, trace = panel.locator(".labkit-status"), panel.locator(".labkit-trace")
            phone = page.locator(".labkit-softphone").first
            phone_state = phone.locator(".labkit-phone-state")
            audio = panel.locator(".labkit-call-audio")
            expect(status).to_have_text("no call", timeout=20_000)
            expect(audio.locator(".labkit-listen")).to_be_visible(timeout=20_000)
            page.get_by_text("| Idle").first.wait_for(timeout=60_000)  # Run All has finished
            client, kernel = _kernel(base, token, tmp_path / "runtime", AUDIO_NOTEBOOK)

            # Before a call, every control that needs one is disabled (issue 22).
            for name in ("Hang up", "Stream", "Say", "Mute phone", "Earmuff phone"):
                expect(panel.get_by_role("button", name=button_name(name))).to_be_disabled()
            # Double-click Call: one call, and Call stays disabled while it is up.
            call_button = panel.get_by_role("button", name=button_name("Call"))
            call_button.dblclick()
            expect(phone_state).to_have_text("ringing", timeout=30_000)
            expect(call_button).to_be_disabled()
            placed = kernel("import json; print(json.dumps([c.uuid for c in lab.calls.values() "
                            "if c.to == panel.to.value]))")
            assert len(placed) == 1, f"expected one call from a double-click, got {len(placed)}"
            phone.get_by_role("button", name=button_name("Answer")).click()
            expect(status).to_have_text("answered", timeout=30_000)
            shot(page, "1-answered")

            # Every button leaves a trace.
            panel.locator(".widget-gridbox").get_by_role("button", name=button_name("5")).click()
            expect(trace).to_contain_text("sent key 5", timeout=10_000)
            panel.get_by_role("button", name=button_name("Mute phone")).click()
            expect(panel.get_by_role("button", name=button_name("Phone muted"))).to_be_visible(timeout=10_000)
            expect(trace).to_contain_text("phone muted: its voice is cut from the call", timeout=10_000)
            panel.get_by_role("button", name=button_name("Phone muted")).click()
            expect(trace).to_contain_text("unmuted", timeout=10_000)
            panel.get_by_role("button", name=button_name("Earmuff phone")).click()
            expect(panel.get_by_role("button", name=button_name("Phone earmuffed"))).to_be_visible(timeout=10_000)
            panel.get_by_role("button", name=button_name("Phone earmuffed")).click()
            expect(trace).to_contain_text("earmuff off", timeout=10_000)
            panel.get_by_role("button", name=button_name("Say")).click()
            expect(trace).to_contain_text("saying", timeout=10_000)
            phone.locator(".widget-gridbox").get_by_role("button", name=button_name("7")).click()
            expect(phone.locator(".labkit-trace")).to_contain_text("pressed 7", timeout=10_000)
            assert panel.locator(".labkit-error").inner_text().strip() == ""
            shot(page, "2-traces")

            # Listen: the phone speaks into the call; its words reach the page's audio graph.
            audio.locator(".labkit-listen").click()
            expect(audio.locator(".labkit-audio-status")).to_contain_text("listening to the call", timeout=10_000)
            phone.get_by_role("button", name=button_name("Speak")).click()
            expect(phone.locator(".labkit-trace")).to_contain_text("speaking", timeout=10_000)
            root = audio.element_handle()
            page.wait_for_function("el => Number(el.dataset.framesPlayed) > 50", arg=root, timeout=20_000)
            page.wait_for_function("el => Number(el.dataset.analyserPeak) > 0.01", arg=root, timeout=20_000)
            shot(page, "3-listening")

            # Talk: chromium's fake microphone says prompt.wav; the phone must hear it. First on the page's
            # direct socket to the lab, then through Jupyter's comm (the way a page that cannot reach the lab
            # takes), in the same run: both must carry the audio, and their delays are printed side by side.
            status_line = audio.locator(".labkit-audio-status")
            expect(status_line).to_contain_text("audio: direct to the lab", timeout=15_000)
            direct = talk_and_measure(page, kernel, audio, root, "direct")
            shot(page, "4-talking")
            kernel("import json; panel.audio.use_direct(False); print(0)")
            expect(status_line).to_contain_text("audio: through Jupyter", timeout=15_000)
            phone.get_by_role("button", name=button_name("Speak")).click()  # heard through the comm now
            page.wait_for_function("el => Number(el.dataset.analyserPeak) > 0.01", arg=root, timeout=20_000)
            jupyter = talk_and_measure(page, kernel, audio, root, "jupyter")
            figures = {"direct": direct, "jupyter": jupyter}
            (ARTIFACTS / "audio-delays.json").write_text(json.dumps(figures, indent=1))
            for name, f in figures.items():
                print(f"browser audio, {name}: call -> speaker {f['speaker_delay_ms']} ms "
                      f"({f['speaker_delay_parts']}); mic -> call {f['mic_delay_ms']} ms ({f['mic_delay_parts']}); "
                      f"audio clock {f['page_audio_clock_ratio']}")
            print("browser audio:", figures)
            for name, f in figures.items():
                assert f["audio_path"] == name, f"the page said it used {f['audio_path']!r}, expected {name!r}"
            # The direct way: scored as the sandbox page's test scores its own socket (test_sandbox_page.py).
            # Seen here in 3 of 22 talks (11 runs, 2026-12-07), twice through the comm and once direct: the same
            # quarter of the WAV (0.95-1.2 s) at 0.60-0.69 in both copies where saved, the other five at 0.91-0.98.
            dropped = int(direct.get("mic_frames_dropped") or 0)  # mic_frames: those handed to the call
            assert_live_voice_heard(direct["pieces"], dropped, direct["mic_frames"] + dropped,
                                    "direct: the microphone in what the phone heard")
            # Through Jupyter, the way a page that cannot reach the lab falls back to: the microphone reaches the
            # call. Not every quarter: starved, that way drops pieces to stay live, by design (at load 11.5 from
            # other work it dropped 116 frames, three quarters under 0.8, while the direct way in the same run
            # lost none and scored 0.91-0.98); its exact audio is held by test_widgets.py's kernel-side tests
            assert max(jupyter["pieces"]) > 0.8, (
                f"jupyter: expected the microphone's WAV in what the phone heard (a quarter second with correlation "
                f"> 0.8), measured {jupyter['pieces']} ({jupyter['mic_frames_dropped']} frames dropped to stay live)")
            # A page that cannot reach the lab (Jupyter on another machine, a firewall): it says so, in words,
            # and the call still plays through the comm.
            kernel("panel.audio.direct_url = 'ws://127.0.0.1:9/browser-audio?token=none'; print(0)")
            expect(status_line).to_contain_text("audio: through Jupyter (this page cannot reach the lab at "
                                                "127.0.0.1:9)", timeout=15_000)
            played = int(root.get_attribute("data-frames-played") or 0)
            page.wait_for_function(f"el => Number(el.dataset.framesPlayed) > {played + 25}", arg=root, timeout=10_000)
            assert audio.locator(".labkit-audio-error").inner_text().strip() == ""

            # Many events: the newest is in view without scrolling.
            panel.get_by_role("button", name=button_name("Hang up")).click()
            expect(status).to_have_text("completed", timeout=30_000)
            box = panel.locator(".labkit-events-scroll")
            lines = box.locator("div")
            assert lines.count() >= 10
            newest = lines.first  # newest first in the markup, shown at the bottom
            expect(newest).to_contain_text(re.compile(r"completed|socket|closed"), timeout=10_000)
            # box and line read in one evaluation: the widget replaces the box on every event, and two separate
            # handles could come from two renders (a detached box measures as zero)
            inside = box.evaluate("""b => { const line = b.querySelector('div'); const r = b.getBoundingClientRect();
                const l = line.getBoundingClientRect(); return l.top >= r.top - 1 && l.bottom <= r.bottom + 1; }""")
            assert inside, "the newest event line is scrolled out of the events box"
            expect(call_button).to_be_enabled(timeout=10_000)
            shot(page, "5-completed")
        except Exception:
            shot(page, "failure")
            (ARTIFACTS / "audio-failure.html").write_text(page.content())
            raise
        finally:
            if client is not None:
                client.stop_channels()
            browser.close()


PLAIN_PAGE = """<!doctype html><html><body><div id="audio"></div><script type="module">
import { createCallAudio } from "./callaudio.js";
// A host that is not a notebook (the sandbox's softphone page will be one): a transport made by hand.
const sent = [], states = [], reports = [];
let feed = null;
const transport = {
  rate: () => 16000,
  source: () => "a test tone",
  onAudio(fn) { feed = fn; return () => { feed = null; }; },
  sendMic(pcm, rate, t) { sent.push([pcm.length, rate]); },
  setState(name, value) { states.push([name, value]); },
  report(stats) { reports.push(stats); },
  onChange(fn) { return () => {}; },
};
const root = document.getElementById("audio");
createCallAudio(root, transport);
// 40 ms pieces of a 440 Hz tone, as a call would deliver them
setInterval(() => {
  if (!feed) return;
  const pcm = new Int16Array(640);
  const t0 = performance.now() / 1000;
  for (let i = 0; i < 640; i++) pcm[i] = Math.round(8000 * Math.sin(2 * Math.PI * 440 * (t0 + i / 16000)));
  feed(pcm, 16000, { t: Date.now(), age_ms: 0 });
}, 40);
window.labkitTest = { sent, states, reports, root };
</script></body></html>"""


@contextlib.contextmanager
def plain_page(folder: Path) -> Iterator[str]:
    """The call-audio module on a plain page (PLAIN_PAGE), served from `folder`; yields the page's URL."""
    import functools
    import http.server
    import shutil
    import threading

    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(ROOT / "labkit" / "widgets" / "static" / "callaudio.js", folder / "callaudio.js")
    (folder / "index.html").write_text(PLAIN_PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_call_audio_module_runs_on_a_plain_page_through_its_transport_seam(tmp_path):
    """The same JS module outside Jupyter: only the transport differs (no anywidget, no kernel)."""
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is missing ({CHROMIUM})")
    media_args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={MIC_WAV}"]
    with plain_page(tmp_path) as url:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + media_args, headless=True)
            try:
                page = browser.new_page()
                page.goto(url)
                root = page.locator("#audio")
                root.locator(".labkit-listen").click()
                expect(root.locator(".labkit-audio-status")).to_contain_text("listening to a test tone")
                page.wait_for_function("Number(labkitTest.root.dataset.analyserPeak) > 0.1", timeout=15_000)
                root.locator(".labkit-talk").click()
                page.wait_for_function("labkitTest.sent.length >= 10", timeout=15_000)
                sent = page.evaluate("labkitTest.sent")
                assert all(n == 320 and rate == 16000 for n, rate in sent)  # one 20 ms frame each, at the call's rate
                root.locator(".labkit-mic-mute").click()
                expect(root.locator(".labkit-audio-status")).to_contain_text("mic muted")
                count = page.evaluate("labkitTest.sent.length")
                page.wait_for_timeout(300)
                assert page.evaluate("labkitTest.sent.length") == count  # muted: nothing goes out
                root.locator(".labkit-talk").click()
                states = page.evaluate("labkitTest.states")
                assert states == [["listening", True], ["talking", True], ["talking", False]]
                assert root.locator(".labkit-audio-error").inner_text().strip() == ""
                root.screenshot(path=str(ARTIFACTS / "audio-plain-page.png"))
            finally:
                browser.close()


@pytest.mark.parametrize(("args", "expected"), [
    ([], "No microphone was found"),  # headless chromium has no microphone of its own
    (["--use-fake-device-for-media-stream", "--deny-permission-prompts"], "refused the microphone"),
], ids=["absent", "refused"])
def test_microphone_absent_or_refused_says_what_to_do(tmp_path, args, expected):
    """A microphone that is missing or refused: the page says which, and what to do, in words."""
    from playwright.sync_api import expect, sync_playwright

    with plain_page(tmp_path) as url:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + args, headless=True)
            try:
                context = browser.new_context()  # no microphone permission granted
                page = context.new_page()
                page.goto(url)
                root = page.locator("#audio")
                root.locator(".labkit-talk").click()
                error = root.locator(".labkit-audio-error")
                expect(error).to_contain_text(expected, timeout=15_000)
                expect(root.locator(".labkit-talk")).to_have_text("Talk")  # back to not talking
                root.screenshot(path=str(ARTIFACTS / f"audio-mic-{'absent' if not args else 'refused'}.png"))
            finally:
                browser.close()
