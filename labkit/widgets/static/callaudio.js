// labkit call audio: hear a call and talk into it from the browser (Web Audio).
//
// One front end for two hosts: a notebook (anywidget; the kernel is the other end) and a plain page
// (the standalone sandbox's HTTP control API). Everything host-specific goes through a small
// *transport*:
//   transport.onAudio(fn)            fn(Int16Array pcm, rate, meta): call audio to play
//   transport.sendMic(pcm, rate, t)  an Int16Array of microphone audio at `rate`, captured at epoch ms t
//   transport.setState(name, value)  tell the other end: "listening", "talking" (booleans)
//   transport.report(stats)          frames played, levels, measured delays, errors (for status and tests)
//   transport.rate()                 the call audio's sample rate (8000, 16000 or 24000)
//   transport.onChange(fn)           fn() when the other end's state (source, rate) changed
//   transport.source()               what is being heard, in words
//   transport.path()                 (optional) which way the audio goes, in words, shown in the status line
//   transport.micChunkMs             (optional) the microphone's piece, ms (20 unless it says)
// The notebook's transport is in widgetaudio.js (the lab's own socket, or Jupyter's comm); the sandbox
// page's in wstransport.js.
//
// The wire carries 16-bit audio at the call's rate (a third of 48 kHz). The AudioContext runs at 48 kHz with
// the smallest output buffer (latencyHint 0): in chromium a context at 16 kHz cannot go below 128 frames of
// 16 kHz (8 ms) plus 24 ms of output latency, where one at 48 kHz measured 2.7 + 8 ms (2026-12-07, headless,
// a 44.1 kHz device: the browser converts). The call's audio is resampled here by a whole factor (16 -> 48 kHz
// and back) with a windowed-sinc filter that keeps its history from piece to piece, so no piece has an edge
// (a 1 kHz tone in 20 ms pieces: 74 dB SNR up, 68 dB there and back; flat to 3.4 kHz, -1 dB at 6 kHz).

// The playback queue is sized from how the call's audio arrives (the rule of labkit/media/jitter.py, as a
// softphone's jitter buffer sizes itself): each piece's lateness against the earliest of the last 150
// (3 s of 20 ms frames); playback (re)starts that far ahead (the 95th percentile plus a render quantum), and
// a lasting excess is cut (see play). A fixed queue had to be sized for the worst host; this one is as short
// as the path allows.
const MIN_QUEUE_S = 0.01; // at least this much is scheduled ahead of "now" (the render quantum, a little more)
const MAX_QUEUE_S = 0.16; // the measured target never goes past this: a gap costs less than a late call
const MAX_AHEAD_S = 0.2; // never queue more than this: drop audio rather than fall behind (a burst after a stall)
const JITTER_WINDOW = 150;
const CONTEXT_RATE = 48000; // a whole multiple of every call rate (8, 16, 24 kHz); the browser converts to the device's
const TAPS_PER_PHASE = 16; // the resampler's filter: 16 taps per input sample (0.5 ms of delay each way)

export function resampler(from, to) {
  // fn(Float32Array at `from`) -> Float32Array at `to`, for a whole ratio either way (null otherwise): a
  // Blackman-windowed sinc low-pass at 0.45 of the lower rate, with the history carried between pieces.
  if (from === to) return (x) => x;
  const up = to > from, L = up ? to / from : from / to;
  if (!Number.isInteger(L)) return null;
  const taps = TAPS_PER_PHASE * L, h = new Float32Array(taps), fc = 0.45 / L;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const m = i - (taps - 1) / 2, w = (2 * Math.PI * i) / (taps - 1);
    h[i] = (m === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * m) / (Math.PI * m)) * (0.42 - 0.5 * Math.cos(w) + 0.08 * Math.cos(2 * w));
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at 0 Hz
  let hist = new Float32Array(up ? TAPS_PER_PHASE : taps - 1); // the input just before this piece
  return (input) => {
    const buf = new Float32Array(hist.length + input.length);
    buf.set(hist);
    buf.set(input, hist.length);
    let out;
    if (up) { // output n*L+p = L * sum_k h[k*L+p] * x[n-k] (zeros stuffed between input samples)
      out = new Float32Array(input.length * L);
      for (let n = 0; n < input.length; n++) {
        const at = hist.length + n;
        for (let p = 0; p < L; p++) {
          let acc = 0;
          for (let k = 0; k < TAPS_PER_PHASE; k++) acc += h[k * L + p] * buf[at - k];
          out[n * L + p] = acc * L;
        }
      }
    } else { // output m = sum_i h[i] * x[m*L + L-1 - i] (input pieces are whole multiples of L)
      out = new Float32Array(Math.floor(input.length / L));
      for (let m = 0; m < out.length; m++) {
        const at = hist.length + m * L + L - 1;
        let acc = 0;
        for (let i = 0; i < taps; i++) acc += h[i] * buf[at - i];
        out[m] = acc;
      }
    }
    hist = buf.slice(buf.length - hist.length);
    return out;
  };
}
const MIC_CHUNK_MS = 20; // microphone audio in 20 ms pieces (one call frame), unless the transport says
                         // otherwise (transport.micChunkMs: Jupyter's comm, whose every message costs the kernel)

export function arrivalJitter(window = JITTER_WINDOW, quantile = 0.95) {
  // Seconds of lateness to ride out: see labkit/media/jitter.py (ArrivalJitter), the same rule.
  const offsets = [];
  let position = 0, last = null;
  return {
    arrive(seconds, now) {
      const offset = now - position;
      if (last !== null && offset - last > 0.5) offsets.length = 0; // a pause, not jitter
      offsets.push(offset);
      if (offsets.length > window) offsets.shift();
      last = offset;
      position += seconds;
    },
    target() {
      if (offsets.length < 2) return 0;
      const base = Math.min(...offsets);
      const late = offsets.map((o) => o - base).sort((a, b) => a - b);
      return late[Math.min(late.length - 1, Math.floor(quantile * late.length))];
    },
  };
}

const WORKLET = `
// Gathers exactly one piece (processorOptions.chunk samples) on the audio thread and posts it the moment it
// is whole: one message per piece, where a message per 128-sample block was 375 a second at 48 kHz on the
// page's main thread (a notebook's is busy).
class LabkitMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options.processorOptions.chunk;
    this.buf = new Float32Array(this.size);
    this.n = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        this.buf[this.n++] = ch[i];
        if (this.n === this.size) {
          this.port.postMessage(this.buf, [this.buf.buffer]);
          this.buf = new Float32Array(this.size);
          this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("labkit-mic", LabkitMic);
`;

export function micError(err) {
  // The sentences a person sees when the microphone cannot be used.
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "PermissionDeniedError")
    return "The browser refused the microphone. Allow it for this page (the icon at the left of the address bar), then press Talk again.";
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError")
    return "No microphone was found. Plug one in (or choose one in your system's sound settings), then press Talk again.";
  if (name === "NotReadableError" || name === "TrackStartError")
    return "The microphone is in use by another program, or the system blocked it. Close that program, then press Talk again.";
  if (name === "SecurityError" || name === "NoMediaDevices")
    return "This page may not use a microphone: browsers allow it only on https:// or http://localhost pages. Open the lab at http://127.0.0.1 or localhost.";
  return `The microphone could not start (${name || "error"}: ${(err && err.message) || err}).`;
}

function el_(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function createCallAudio(root, transport) {
  root.classList.add("labkit-call-audio");
  const bar = el_("div", "labkit-audio-row");
  Object.assign(bar.style, { display: "flex", flexWrap: "wrap", alignItems: "center", gap: "6px" });
  const listen = el_("button", "labkit-listen jupyter-button widget-button", "Listen");
  const talk = el_("button", "labkit-talk jupyter-button widget-button", "Talk");
  const mute = el_("button", "labkit-mic-mute jupyter-button widget-button", "Mute mic");
  listen.title = "play the call here as it happens";
  talk.title = "send your microphone into the call";
  const volume = el_("input", "labkit-volume");
  Object.assign(volume, { type: "range", min: "0", max: "2", step: "0.05", value: "1", title: "volume" });
  const speakerMeter = el_("meter", "labkit-level");
  Object.assign(speakerMeter, { min: 0, max: 1, value: 0, title: "what you hear" });
  const micMeter = el_("meter", "labkit-mic-level");
  Object.assign(micMeter, { min: 0, max: 1, value: 0, title: "your microphone" });
  // Each button as wide as its longest label ("Stop listening", "Stop talking", "Unmute mic"), so the row
  // never reflows when a label changes under the pointer.
  const widest = { Listen: "9.5em", Talk: "8.5em", "Mute mic": "7.5em" };
  for (const b of [listen, talk, mute]) {
    b.type = "button"; b.style.width = widest[b.textContent]; b.style.padding = "0 8px"; b.style.flex = "none";
  }
  mute.disabled = true;
  volume.style.width = "90px";
  const label = (text, ...kids) => { const l = el_("label", "", text + " "); l.append(...kids); l.style.fontSize = "12px"; return l; };
  bar.append(listen, talk, mute, label("volume", volume), label("out", speakerMeter), label("mic", micMeter));
  const status = el_("div", "labkit-audio-status", "");
  const error = el_("div", "labkit-audio-error", "");
  error.style.color = "#b00020";
  status.style.fontSize = error.style.fontSize = "12px";
  root.append(bar, status, error);

  const s = {
    ctx: null, gain: null, analyser: null, nextTime: 0, listening: false, talking: false, muted: false,
    framesPlayed: 0, framesDropped: 0, micFrames: 0, stream: null, micNode: null, micSource: null,
    peak: 0, micPeak: 0, speakerDelays: [], closed: false, workletCtx: null,
    jitter: arrivalJitter(), lowest: Infinity, highest: 0, since: 0, excess: 0, restarts: 0,
  };

  function setStatus() {
    const parts = [];
    const source = transport.source();
    parts.push(s.listening ? (source ? `listening to ${source}` : "listening: no call right now") : "not listening");
    // Only claim the call hears you when there is a call to hear you: with none, nothing is sent.
    parts.push(s.talking ? (s.muted ? "talking (mic muted)"
      : (source ? "talking: the call hears your microphone" : "talking: nothing is sent until there is a call"))
      : "not talking");
    if (transport.path) {
      const path = transport.path();
      // another way: its figures, and its arrivals' jitter (the queue's size), are measured afresh
      if (path !== s.path) { s.path = path; s.speakerDelays = []; s.jitter = arrivalJitter(); }
      parts.push(path);
    }
    status.textContent = parts.join(" \u00b7 ");
    listen.textContent = s.listening ? "Stop listening" : "Listen";
    talk.textContent = s.talking ? "Stop talking" : "Talk";
    listen.classList.toggle("mod-warning", s.listening);
    talk.classList.toggle("mod-danger", s.talking);
    mute.textContent = s.muted ? "Unmute mic" : "Mute mic";
    mute.disabled = !s.talking;
    listen.setAttribute("aria-pressed", String(s.listening));
    talk.setAttribute("aria-pressed", String(s.talking));
    mute.setAttribute("aria-pressed", String(s.muted));
    root.dataset.framesPlayed = String(s.framesPlayed);
    root.dataset.micFrames = String(s.micFrames);
  }

  function showError(text) {
    error.textContent = text ? "\u26a0 " + text : "";
    transport.report({ error: text || "" });
  }

  async function context() {
    // Created on a click (browsers start audio only after a gesture), at 48 kHz (see the header).
    const rate = transport.rate();
    if (s.ctx && s.callRate === rate) return s.ctx;
    if (s.ctx) await s.ctx.close();
    const Ctx = window.AudioContext || window.webkitAudioContext;
    const high = CONTEXT_RATE % rate === 0 ? CONTEXT_RATE : rate;
    s.ctx = new Ctx({ sampleRate: high, latencyHint: 0 });
    s.callRate = rate;
    s.up = resampler(rate, s.ctx.sampleRate);
    s.gain = s.ctx.createGain();
    s.gain.gain.value = Number(volume.value);
    s.analyser = s.ctx.createAnalyser();
    s.analyser.fftSize = 1024;
    s.gain.connect(s.analyser);
    s.analyser.connect(s.ctx.destination);
    s.nextTime = 0;
    return s.ctx;
  }

  const quantum = () => (s.ctx ? 128 / s.ctx.sampleRate : 0.008); // the audio thread renders 128 samples at a time

  function queueTarget() {
    // what the measured jitter needs, plus one render quantum: what a piece on time finds queued
    return Math.min(MAX_QUEUE_S, Math.max(MIN_QUEUE_S, s.jitter.target() + quantum()));
  }

  function play(pcm, rate, meta) {
    if (!s.listening || !s.ctx || s.closed) return;
    const ctx = s.ctx;
    const now = ctx.currentTime;
    const seconds = pcm.length / rate;
    s.jitter.arrive(seconds, performance.now() / 1000);
    const target = queueTarget();
    let ahead = s.nextTime - now;
    if (ahead < 0.003) { // ran dry (or starts): a new window too
      s.nextTime = now + target; ahead = target; s.lowest = Infinity; s.highest = 0; s.since = performance.now();
      s.restarts++;
    }
    // The target is what a piece on time finds queued (the most any piece found), and the latest piece should
    // still find a floor (a render quantum and a little). When, over the last second, the most found stayed
    // above the target and the least above the floor (a burst, an audio clock slower than the call's), cut the
    // smaller excess from the start of the next piece, so the call plays that much sooner: one splice, as
    // small as the excess, where a fixed queue would keep the delay for good.
    const floor = quantum() + 0.003, wall = performance.now();
    s.lowest = Math.min(s.lowest, ahead);
    s.highest = Math.max(s.highest, ahead);
    if (wall - s.since >= 1000) {
      const excess = Math.min(s.highest - target, s.lowest - floor);
      s.excess = excess > 0.005 ? excess : 0;
      s.lowest = Infinity; s.highest = 0; s.since = wall;
    }
    if (ahead > MAX_AHEAD_S) { s.framesDropped += seconds / 0.02; return; }
    const float = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) float[i] = pcm[i] / 32768;
    let up = rate === s.callRate ? s.up(float) : float; // (a piece at another rate: the browser resamples it)
    const upRate = up === float ? rate : ctx.sampleRate;
    if (s.excess > 0) {
      const cut = Math.min(up.length, Math.round(s.excess * upRate));
      up = up.subarray(cut);
      s.excess -= cut / upRate;
      s.framesDropped += cut / upRate / 0.02;
      if (!up.length) return;
    }
    const buf = ctx.createBuffer(1, up.length, upRate);
    buf.copyToChannel(up, 0);
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(s.gain);
    src.start(s.nextTime);
    s.nextTime += buf.duration;
    s.framesPlayed += seconds / 0.02;
    if (meta && meta.t) {
      // the call's age of the audio + wire + scheduled ahead + the device's own output latency
      const out = (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
      const parts = [meta.age_ms || 0, Math.max(0, Date.now() - meta.t), ahead * 1000, out * 1000];
      s.speakerDelays.push(parts);
      if (s.speakerDelays.length > 200) s.speakerDelays.shift();
    }
  }

  async function startListening() {
    await context();
    if (s.ctx.state === "suspended") await s.ctx.resume();
    s.listening = true;
    transport.setState("listening", true);
  }

  function stopListening() {
    s.listening = false;
    transport.setState("listening", false);
  }

  async function startTalking() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw Object.assign(new Error("no mediaDevices"), { name: "NoMediaDevices" });
    }
    const ctx = await context();
    if (ctx.state === "suspended") await ctx.resume();
    s.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    try {
      s.micSource = ctx.createMediaStreamSource(s.stream);
    } catch (err) {
      stopStream();
      throw err;
    }
    if (s.workletCtx !== ctx) {  // a worklet module is registered once per context
      const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
      try {
        await ctx.audioWorklet.addModule(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      s.workletCtx = ctx;
    }
    const callRate = s.callRate, down = resampler(ctx.sampleRate, callRate);
    const chunk = Math.round((ctx.sampleRate * (transport.micChunkMs || MIC_CHUNK_MS)) / 1000);
    s.micNode = new AudioWorkletNode(ctx, "labkit-mic", { processorOptions: { chunk } });
    s.micNode.port.onmessage = (ev) => {
      const block = ev.data; // exactly one piece (whole 20 ms frames), at the context's rate
      let peak = 0;
      for (let i = 0; i < block.length; i++) peak = Math.max(peak, Math.abs(block[i]));
      s.micPeak = Math.max(peak, s.micPeak * 0.9);
      const at = down(block); // at the call's rate (the filter runs while muted too: no edge on unmute)
      if (s.muted) return;
      const pcm = new Int16Array(at.length);
      for (let i = 0; i < at.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(at[i] * 32767)));
      s.micFrames += pcm.length / (callRate * 0.02);
      transport.sendMic(pcm, callRate, Date.now());
    };
    s.micSource.connect(s.micNode);
    s.talking = true;
    transport.setState("talking", true);
  }

  function stopStream() {
    if (s.stream) for (const track of s.stream.getTracks()) track.stop();
    s.stream = null;
  }

  function stopTalking() {
    if (s.micSource) s.micSource.disconnect();
    if (s.micNode) { s.micNode.port.onmessage = null; s.micNode.disconnect(); }
    s.micSource = s.micNode = null;
    stopStream();
    s.talking = false; s.muted = false; s.micPeak = 0;
    transport.setState("talking", false);
  }

  async function guard(fn) {
    try {
      showError("");
      await fn();
    } catch (err) {
      showError(micError(err));
      if (s.talking || s.stream) stopTalking();
    }
    setStatus();
  }

  listen.addEventListener("click", () => guard(() => (s.listening ? stopListening() : startListening())));
  talk.addEventListener("click", () => guard(() => (s.talking ? stopTalking() : startTalking())));
  mute.addEventListener("click", () => { s.muted = !s.muted; setStatus(); });
  volume.addEventListener("input", () => { if (s.gain) s.gain.gain.value = Number(volume.value); });

  const offAudio = transport.onAudio(play);
  const offChange = transport.onChange(setStatus);
  const samples = new Float32Array(1024);
  const timer = setInterval(() => {
    if (s.analyser) {
      s.analyser.getFloatTimeDomainData(samples);
      let peak = 0;
      for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
      s.peak = Math.max(peak, s.peak * 0.8);
    }
    speakerMeter.value = Math.min(1, s.peak);
    micMeter.value = Math.min(1, s.micPeak);
    root.dataset.analyserPeak = s.peak.toFixed(4);
    if (s.ctx && s.listening) {
      // How fast the audio device's clock runs against the wall clock (1.0 when healthy): a starved
      // audio thread plays slower than the call sends, and the page then drops audio to stay live.
      if (!s.clockStart) s.clockStart = [s.ctx.currentTime, performance.now()];
      const wall = (performance.now() - s.clockStart[1]) / 1000;
      if (wall > 1) root.dataset.clockRatio = ((s.ctx.currentTime - s.clockStart[0]) / wall).toFixed(3);
    }
    root.dataset.framesPlayed = String(Math.round(s.framesPlayed));
    root.dataset.micFrames = String(Math.round(s.micFrames));
    const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v.length ? v[v.length >> 1] : 0; };
    const d = s.speakerDelays;
    const total = median(d.map((p) => p[0] + p[1] + p[2] + p[3]));
    transport.report({
      frames_played: Math.round(s.framesPlayed), frames_dropped: Math.round(s.framesDropped),
      mic_frames_sent: Math.round(s.micFrames), peak: Number(s.peak.toFixed(4)),
      speaker_delay_ms: Math.round(total), speaker_queue_target_ms: Math.round(queueTarget() * 1000),
      speaker_restarts: s.restarts,
      speaker_delay_parts: d.length ? `kernel ${median(d.map((p) => p[0])).toFixed(0)} ms + wire ${median(d.map((p) => p[1])).toFixed(0)} ms + queued ${median(d.map((p) => p[2])).toFixed(0)} ms + device ${median(d.map((p) => p[3])).toFixed(0)} ms` : "",
    });
  }, 250);
  setStatus();

  return () => {
    s.closed = true;
    clearInterval(timer);
    offAudio();
    offChange();
    if (s.talking) stopTalking();
    if (s.ctx) s.ctx.close();
  };
}
