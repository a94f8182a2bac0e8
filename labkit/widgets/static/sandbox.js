// The softphone page at a standalone sandbox's `/`: every virtual phone, ringing when an app calls it,
// with Answer / Reject / Hang up, a keypad, what it heard, and Listen / Talk (callaudio.js, the same
// module the notebook panel uses, through the phone's audio WebSocket in wstransport.js).

import { createCallAudio } from "/_labkit/page/callaudio.js";
import { wsTransport } from "/_labkit/page/wstransport.js";

const API = "/_labkit";
const POLL_MS = 250; // how often the phone list is read: a call rings here within about this long
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

const phonesBox = document.querySelector(".labkit-phones");
const cards = new Map(); // number -> card
const callInfo = new Map(); // call uuid -> the call's view (from, to, direction)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function request(method, path, body) {
  const init = { method, cache: "no-store" };
  if (body !== undefined) { init.headers = { "Content-Type": "application/json" }; init.body = JSON.stringify(body); }
  const r = await fetch(API + path, init);
  const data = r.headers.get("Content-Type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((data && (data.detail || data.title)) || `HTTP ${r.status}`);
  return data;
}

async function callOf(uuid) {
  // who is on the other end (fetched once per call)
  if (!uuid) return null;
  if (!callInfo.has(uuid)) callInfo.set(uuid, request("GET", `/calls/${uuid}`).catch(() => null));
  return callInfo.get(uuid);
}

function makeCard(number) {
  const card = el("div", "labkit-phone");
  card.dataset.number = number;
  const title = el("h2", "", number);
  const state = el("span", "labkit-phone-state", "idle");
  const timer = el("span", "labkit-timer", "");
  title.append(timer, state);
  const who = el("div", "labkit-phone-who", "");
  const actions = el("div", "labkit-row");
  const button = (text, cls) => { const b = el("button", cls, text); b.type = "button"; return b; };
  const answer = button("Answer", "labkit-answer"), reject = button("Reject", "labkit-reject");
  const hangup = button("Hang up", "labkit-hangup"), dial = button("Call the app", "labkit-dial");
  dial.title = "this phone calls the application's number (an inbound call), or the number typed beside it";
  const dialTo = el("input", "labkit-dial-to");
  Object.assign(dialTo, { placeholder: "the app's number", inputMode: "tel", title: "dial pad: whom to call" });
  dialTo.addEventListener("input", () => { dial.textContent = dialTo.value.trim() ? "Call" : "Call the app"; });
  actions.append(answer, reject, hangup, dialTo, dial);
  const keypad = el("div", "labkit-keypad");
  const keys = KEYS.map((k) => { const b = button(k, "labkit-key"); keypad.append(b); return b; });
  const trace = el("div", "labkit-trace", "");
  const audioBox = el("div", "labkit-audio");
  const heard = el("div", "labkit-heard");
  const heardButton = button("What it heard", "labkit-heard-load");
  const player = el("audio");
  player.controls = true;
  player.preload = "auto";
  heard.append(heardButton, player);
  const figures = el("div", "labkit-figures", "");
  const error = el("div", "labkit-phone-error", "");
  const history = el("div", "labkit-history");
  card.append(title, who, actions, keypad, trace, error, audioBox, heard, figures, history);

  const transport = wsTransport(API, number);
  const closeAudio = createCallAudio(audioBox, transport);
  const c = { card, state, who, answer, reject, hangup, dial, dialTo, keys, trace, player, figures, error, transport,
              closeAudio, history, timer, view: null, lastCall: null, pressed: "", dialled: null, shown: "",
              since: null };

  const act = async (what, path, body) => {
    error.textContent = "";
    try {
      const view = await request("POST", `/phones/${number}/${path}`, body);
      trace.textContent = what;
      if (path === "dial" && view && view.uuid) { c.dialled = view.uuid; checkEnded(c, view.uuid); }
      if (view && view.state) show(c, view);
    } catch (err) {
      error.textContent = "\u26a0 " + err.message;
    }
  };
  answer.addEventListener("click", () => act("answered", "answer"));
  reject.addEventListener("click", () => act("rejected", "reject"));
  hangup.addEventListener("click", () => act("hung up", "hangup"));
  dial.addEventListener("click", () => {
    const to = dialTo.value.replace(/[\s()+.-]/g, "");
    act(to ? `calling ${to}` : "calling the application", "dial", to ? { to } : {});
  });
  for (const b of keys) {
    b.addEventListener("click", () => {
      if (!c.view || c.view.state !== "answered") { dialTo.value += b.textContent; dialTo.dispatchEvent(new Event("input")); return; }
      c.pressed += b.textContent; act(`pressed ${c.pressed}`, "press", { digits: b.textContent });
    });
  }
  heardButton.addEventListener("click", () => loadHeard(c));
  phonesBox.append(card);
  return c;
}

function loadHeard(c) {
  // what the phone heard in its current (or last) call, as a player
  const call = (c.view && c.view.call) || c.lastCall;
  if (!call) { c.trace.textContent = "no call yet: nothing heard"; return; }
  c.player.src = `${API}/phones/${c.card.dataset.number}/heard.wav?call=${call}&t=${Date.now()}`;
  c.card.dataset.heardCall = call;
}

async function show(c, view) {
  const before = c.view;
  c.view = view;
  c.transport.update(view);
  const incoming = await callOf(view.state === "ringing" ? view.call : null);
  c.state.textContent = view.state;
  c.card.classList.toggle("ringing", view.state === "ringing");
  c.card.classList.toggle("answered", view.state === "answered");
  const ringingIn = view.state === "ringing" && incoming && incoming.direction === "outbound";
  if (view.call && view.state === "answered") c.lastCall = view.call; // (a rejected call heard nothing)
  if (view.state === "ringing") {
    c.who.textContent = ringingIn ? `\u260e call from ${incoming.from.number || incoming.from.uri || "the app"}`
                                  : "calling the application...";
  } else if (view.state === "answered") {
    c.who.textContent = "in a call";
  } else {
    c.who.textContent = view.outcome === "manual" ? "idle: rings here until you answer"
                                                  : `idle: answers by itself (${view.outcome} after ${view.answer_after} s)`;
  }
  c.answer.disabled = c.reject.disabled = !ringingIn;
  c.hangup.disabled = view.state === "idle";
  c.dial.disabled = c.dialTo.disabled = view.state !== "idle";
  for (const k of c.keys) k.disabled = view.state === "ringing"; // idle: the dial pad; answered: DTMF
  if (view.state === "answered" && !c.since) c.since = Date.now();
  if (view.state !== "answered") c.since = null;
  const secs = c.since ? Math.floor((Date.now() - c.since) / 1000) : null;
  c.timer.textContent = secs == null ? "" : `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
  if (before && before.state === "answered" && view.state === "idle") {
    c.pressed = "";
    loadHeard(c); // the call ended: its audio is ready to play
  }
  if (before && before.state !== "idle" && view.state === "idle" && view.calls && view.calls.length) {
    checkEnded(c, view.calls[view.calls.length - 1]);
  }
  if (before && before.state === "idle" && view.state !== "idle") {
    c.error.textContent = ""; // a new call: the last one's problem is not this one's
    c.trace.textContent = view.state === "ringing" ? "" : c.trace.textContent;
  }
  const calls = (view.calls || []).join(",");
  if (calls !== c.shown) { c.shown = calls; renderHistory(c, view.calls || []); }
  const f = c.transport.figures();
  const parts = [];
  if (f.frames_played) parts.push(`played ${f.frames_played} frames, speaker delay ~${f.speaker_delay_ms} ms`);
  if (f.mic_frames_sent) parts.push(`sent ${f.mic_frames_sent} mic frames, mic delay ~${Math.round(f.mic_delay_ms ?? 0)} ms`);
  c.figures.textContent = parts.join(" \u00b7 ");
  if (f.transport_error) c.error.textContent = "\u26a0 " + f.transport_error;
}

async function checkEnded(c, uuid) {
  // A call this phone was in ended (or failed at once): say how, and why when the app was the reason.
  const call = await request("GET", `/calls/${uuid}`).catch(() => null);
  if (!call) return;
  if (call.status && !["started", "ringing", "answered"].includes(call.status)) {
    c.trace.textContent = `the call ${call.direction === "inbound" ? "to the app" : "from the app"} ended: ${call.status}`;
    if (call.problem) c.error.textContent = "\u26a0 " + call.problem;
    const known = c.view ? c.view.calls || [] : []; // the last poll's list may not hold this call yet
    renderHistory(c, known.includes(uuid) ? known : [...known, uuid], true);
  } else if (uuid === c.dialled) {
    setTimeout(() => checkEnded(c, uuid), POLL_MS); // still going: look again
  }
}

const seconds = (s) => (s == null ? "" : `${Number(s).toFixed(1)} s`);
const party = (x) => (x && (x.number || x.uri || x.user)) || "";

async function renderHistory(c, uuids, fresh = false) {
  // The phone's calls, newest first: direction, other party, status, start, duration, id; open one to see
  // its exchange with the app (each webhook, the answer, the NCCO) and why it failed.
  // Renders overlap (the poll's, and an ended call's check): the one started last is the one shown, or an
  // older list that took longer to fetch would replace a newer one and stay (the poll renders on change).
  const generation = (c.historyGeneration = (c.historyGeneration || 0) + 1);
  const rows = [];
  for (const uuid of uuids.slice(-10).reverse()) {
    if (fresh) callInfo.delete(uuid);
    const call = await request("GET", `/calls/${uuid}`).catch(() => null);
    if (!call) continue;
    const item = el("details", "labkit-call");
    item.dataset.uuid = uuid;
    const other = call.direction === "inbound" ? `to ${party(call.to)}` : `from ${party(call.from)}`;
    const started = call.created_at ? new Date(call.created_at).toLocaleTimeString() : "";
    item.append(el("summary", "", `${call.direction} ${other} \u00b7 ${call.status || "?"} \u00b7 ${started} \u00b7 ` +
                                  `${seconds(call.duration)} \u00b7 ${uuid.slice(0, 8)}`));
    if (call.problem) item.append(el("div", "labkit-phone-error", "\u26a0 " + call.problem));
    for (const w of call.webhooks || []) {
      const a = w.answer || {};
      const line = `${w.kind || "webhook"} ${w.method || ""} ${w.url || ""} \u2192 ` +
        (a.status ? `HTTP ${a.status}` : (a.error || "no answer")) + (a.ms != null ? ` in ${a.ms} ms` : "");
      item.append(el("div", "labkit-webhook", line));
    }
    if (call.ncco && call.ncco.actions) {
      item.append(el("pre", "labkit-ncco", JSON.stringify(call.ncco.actions, null, 2)));
    }
    rows.push(item);
  }
  if (generation !== c.historyGeneration) return;
  c.history.replaceChildren(el("div", "labkit-history-title", rows.length ? "Calls" : ""), ...rows);
}

async function poll() {
  try {
    const { phones } = await request("GET", "/phones");
    const seen = new Set();
    for (const view of phones) {
      seen.add(view.number);
      if (!cards.has(view.number)) cards.set(view.number, makeCard(view.number));
      await show(cards.get(view.number), view);
    }
    for (const [number, c] of cards) {
      if (!seen.has(number)) { c.closeAudio(); c.transport.close(); c.card.remove(); cards.delete(number); } // after a reset
    }
    document.querySelector(".labkit-empty").hidden = cards.size > 0;
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (err) {
    document.querySelector(".labkit-app").textContent = `The sandbox does not answer: ${err.message}`;
  }
  setTimeout(poll, POLL_MS);
}

async function start() {
  try {
    const app = await request("GET", "/application");
    document.querySelector(".labkit-app").textContent =
      `Application ${app.application_id} \u00b7 number ${app.number} \u00b7 answer_url ${app.answer_url || "(not set)"}`;
  } catch (err) {
    document.querySelector(".labkit-app").textContent = `The control API refused: ${err.message}`;
  }
  document.querySelector(".labkit-add").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target, out = form.querySelector(".labkit-add-error");
    out.textContent = "";
    const body = { number: form.number.value.trim() };
    if (form.manual.checked) body.outcome = "manual";
    try {
      await request("POST", "/phones", body);
      form.number.value = "";
    } catch (err) {
      out.textContent = "\u26a0 " + err.message;
    }
  });
  poll();
}

start();

// for tests and the curious: a phone's audio figures (frames played, delays) from the console
window.labkitPage = { figures: (number) => cards.get(number)?.transport.figures() ?? null };
