"""The softphone page says why a call failed, where the person looks, and keeps a history of calls.

`labkit sandbox` runs as its own process; the app is a plain http.server whose answer_url the test turns
bad in each way a person's app goes wrong: an answer of HTTP 500, an NCCO the sandbox refuses, and the
app not running at all. Each time "Call the app" is clicked on the page, the phone's card must show the
reason in a sentence within a second or so (screenshots: test-artifacts/sandbox-page-inspector-*.png), the
control API must serve the same sentence (`problem`), and the card's history lists every call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from support.flaky_app import FlakyApp
from support.sandbox_process import SandboxProcess

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
PHONE = "447700900451"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# The page's fetches, slowed where the test says (window.__slow: [regex of the path, delay ms, how many]):
# to put the page's two renders of a card's history in the order that once lost a call from it.
SLOW_FETCH = """
const realFetch = window.fetch;
window.__slow = []; window.__slowDone = {};  // regex -> slowed fetches answered
window.fetch = async (url, init) => {
  const rule = window.__slow.find(([re, , left]) => left > 0 && new RegExp(re).test(String(url)));
  if (!rule) return realFetch(url, init);
  rule[2] -= 1;
  await new Promise((resolve) => setTimeout(resolve, rule[1]));
  try {
    return await realFetch(url, init);
  } finally {
    window.__slowDone[rule[0]] = 1 + (window.__slowDone[rule[0]] || 0);
  }
};
"""


def test_the_page_shows_why_the_app_failed_and_lists_every_call(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is missing ({CHROMIUM}): run `make test` (its system-deps target).")
    app = FlakyApp()
    sb = SandboxProcess(tmp_path / "home", "--answer-url", f"{app.url}/answer", "--event-url", f"{app.url}/event")
    ca = str(sb.ca)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        requests.post(f"{sb.url}/_labkit/phones", json={"number": PHONE, "outcome": "manual"}, verify=ca,
                      timeout=10).raise_for_status()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 900}).new_page()
            page.add_init_script(SLOW_FETCH)
            try:
                page.goto(sb.url + "/")
                card = page.locator(f".labkit-phone[data-number='{PHONE}']")
                error, trace = card.locator(".labkit-phone-error").first, card.locator(".labkit-trace")
                expected = {
                    "500": f"your app at {app.url}/answer answered HTTP 500: look at your app's log for the error",
                    "bad": "your app's NCCO was refused: action 0 (stream)",
                    "down": f"your app at {app.url}/answer refused the connection: is it running",
                }
                for n, mode in enumerate(("500", "bad", "down"), start=1):
                    if mode == "down":
                        app.stop()
                        # The race a suite run lost (the card listed 2 of 3 calls for good): the page learns the
                        # call ended before its poll lists the call, and renders the history from the older list;
                        # that render, slow to fetch the oldest call, finished after the poll's render of all three.
                        view = requests.get(f"{sb.url}/_labkit/phones/{PHONE}", verify=ca, timeout=10).json()
                        oldest = view["calls"][0]
                        page.evaluate("(oldest) => { window.__slow = [['/_labkit/phones$', 1500, 1e9], "
                                      "[`/_labkit/calls/${oldest}$`, 4000, 1]]; }", oldest)
                    else:
                        app.mode = mode
                    card.get_by_role("button", name="Call the app").click()
                    expect(error).to_contain_text(expected[mode], timeout=1500)  # within a second or so
                    expect(trace).to_contain_text("the call to the app ended: ")  # as the sandbox ended it
                    expect(trace).not_to_contain_text("calling the application")
                    if mode == "down":  # both renders are done: the slow fetch answered, and a little after
                        page.wait_for_function("(re) => window.__slowDone[re] >= 1", arg=f"/_labkit/calls/{oldest}$",
                                               timeout=20_000)
                        page.wait_for_timeout(500)
                        page.evaluate("() => { window.__slow = []; }")
                    # the history: one row per call (no time bound asked; the page's poll under two CPU-bound
                    # processes once took longer than Playwright's default 5 s)
                    expect(card.locator(".labkit-call")).to_have_count(n, timeout=20_000)
                    page.screenshot(path=str(ARTIFACTS / f"sandbox-page-inspector-{mode}.png"), full_page=True)
                # the newest call, opened: its exchange with the app, in order
                newest = card.locator(".labkit-call").first
                newest.locator("summary").click()
                expect(newest).to_contain_text("inbound to ")
                # (the 'started' event and the answer request go out side by side, as on Vonage: either is first)
                answer = newest.locator(".labkit-webhook").filter(has_text=f"answer GET {app.url}/answer")
                expect(answer).to_contain_text("connection failed")
            finally:
                browser.close()
        # any language gets the same sentences from the control API
        calls = requests.get(f"{sb.url}/_labkit/calls", verify=ca, timeout=10).json()["calls"]
        problems = [c["problem"] for c in calls if c.get("phone") == PHONE or c["from"].get("number") == PHONE]
        assert any(p and p.startswith(expected["down"]) for p in problems), problems
        assert any(p and p.startswith(expected["500"]) for p in problems), problems
    finally:
        sb.stop()
        if app.server.socket.fileno() != -1:
            app.stop()
