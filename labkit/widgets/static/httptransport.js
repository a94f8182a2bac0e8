// The control-API transport for callaudio.js: one virtual phone of a standalone sandbox, over HTTP on
// the page's own origin (`/_labkit/`). You are that phone: Listen plays what it hears, Talk is its voice.
//
// Listening is a long poll of `heard.wav?since=POS&wait=2`: the sandbox answers as soon as 40 ms more
// were heard, so the page asks about 25 times a second and each piece is at most ~45 ms old.
// Talking posts the microphone as WAV bodies to `say`, one request at a time (so pieces stay in order),
// gathering 80 ms whenever the phone has run out of speech (a jittery piece would otherwise leave a gap
// in the voice each time) and dropping pieces while more than 160 ms is already waiting (to stay live),
// the same rules as the notebook's kernel side (labkit/widgets/call_audio.py).

const RATE = 16000; // what a virtual phone hears at (heard_rate in the control API)
const PREBUFFER_S = 0.08;
const MAX_QUEUE_S = 0.16;
const BACKLOG_S = 0.12; // a listen answer longer than this is old audio (a stall): keep its newest 40 ms

export function wavBytes(pcm, rate) {
  // A 16-bit mono WAV of `pcm` (Int16Array).
  const buf = new ArrayBuffer(44 + pcm.length * 2);
  const v = new DataView(buf);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + pcm.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  text(36, "data"); v.setUint32(40, pcm.length * 2, true);
  new Int16Array(buf, 44).set(pcm);
  return buf;
}

export function wavSamples(buf) {
  // The 16-bit samples of a WAV (walks the chunks: the header is not always 44 bytes).
  const v = new DataView(buf);
  let o = 12;
  while (o + 8 <= buf.byteLength) {
    const id = String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
    const size = v.getUint32(o + 4, true);
    if (id === "data") return new Int16Array(buf.slice(o + 8, o + 8 + Math.min(size, buf.byteLength - o - 8)));
    o += 8 + size + (size & 1);
  }
  return new Int16Array(0);
}

async function problem(r) {
  // The sentence of an RFC 7807 answer (the control API's errors), or the status line.
  try { const body = await r.json(); return body.detail || body.title || `${r.status}`; } catch { return `HTTP ${r.status}`; }
}

export function httpTransport(api, number) {
  const audioFns = new Set(), changeFns = new Set();
  const s = {
    view: null, listening: false, talking: false, since: null, loop: null, abort: null,
    mic: [], micLen: 0, sending: false, queued: 0, queuedAt: 0, error: "",
    micDelays: [], micDropped: 0, backlogDropped: 0, stats: {},
  };
  const phoneUrl = `${api}/phones/${encodeURIComponent(number)}`;
  const answered = () => s.view && s.view.state === "answered";

  async function listenLoop() {
    while (s.listening) {
      if (s.since === null) {
        if (!s.view) { await new Promise((ok) => setTimeout(ok, 100)); continue; }
        s.since = s.view.position; // start live (the answer says where the phone really is from then on)
      }
      s.abort = new AbortController();
      let r;
      try {
        r = await fetch(`${phoneUrl}/heard.wav?since=${s.since}&wait=2`, { signal: s.abort.signal, cache: "no-store" });
      } catch (err) {
        if (!s.listening) break;
        s.error = `Listening stopped: the sandbox did not answer (${err.message}).`;
        await new Promise((ok) => setTimeout(ok, 500));
        continue;
      }
      if (!r.ok) {
        s.error = await problem(r);
        s.since = null;
        await new Promise((ok) => setTimeout(ok, 500));
        continue;
      }
      const sentAt = Number(r.headers.get("X-Labkit-Time")) || Date.now();
      s.since = Number(r.headers.get("X-Labkit-Position"));
      let pcm = wavSamples(await r.arrayBuffer());
      if (pcm.length > RATE * BACKLOG_S) {
        s.backlogDropped += (pcm.length - RATE * 0.04) / (RATE * 0.02);
        pcm = pcm.subarray(pcm.length - RATE * 0.04);
      }
      // age at the answer: on average half a 40 ms piece plus half the sandbox's 5 ms look
      if (pcm.length && s.listening) for (const fn of audioFns) fn(pcm, RATE, { t: sentAt, age_ms: 22.5 });
    }
    s.loop = null;
  }

  async function pump() {
    if (s.sending) return;
    s.sending = true;
    try {
      while (s.mic.length) {
        const left = s.queued - (performance.now() - s.queuedAt) / 1000; // speech the phone has yet to say
        if (left < 0.02 && s.micLen < RATE * PREBUFFER_S) break; // ran dry: gather a little first
        const pieces = s.mic.splice(0);
        s.micLen = 0;
        if (left > MAX_QUEUE_S) { s.micDropped += pieces.length * 2; continue; }
        const all = new Int16Array(pieces.reduce((n, p) => n + p.pcm.length, 0));
        let o = 0;
        for (const p of pieces) { all.set(p.pcm, o); o += p.pcm.length; }
        const r = await fetch(`${phoneUrl}/say`, { method: "POST", headers: { "Content-Type": "audio/wav" }, body: wavBytes(all, RATE) });
        if (!r.ok) { s.error = await problem(r); continue; }
        const said = await r.json();
        s.queued = said.queued_seconds || 0;
        s.queuedAt = performance.now();
        const ahead = Math.max(0, s.queued - said.seconds);
        // capture to send (half a 40 ms piece) + wire + speech queued ahead + half a 20 ms clock tick
        for (const p of pieces) s.micDelays.push(20 + Math.max(0, Date.now() - p.t) + ahead * 1000 + 10);
        while (s.micDelays.length > 200) s.micDelays.shift();
        s.error = "";
      }
    } catch (err) {
      s.error = `Talking stopped reaching the sandbox (${err.message}).`;
    } finally {
      s.sending = false;
    }
  }

  return {
    rate: () => RATE,
    source: () => (answered() ? `what ${number} hears (you are that phone)` : ""),
    onAudio(fn) { audioFns.add(fn); return () => audioFns.delete(fn); },
    sendMic(pcm, rate, t) {
      if (!answered()) { s.micDropped += pcm.length / (rate * 0.02); return; } // no call: nothing to say into
      s.mic.push({ pcm, t });
      s.micLen += pcm.length;
      pump();
    },
    setState(name, value) {
      s[name] = value;
      if (name === "listening") {
        if (value && !s.loop) { s.since = null; s.loop = listenLoop(); }
        if (!value && s.abort) s.abort.abort();
      }
      if (name === "talking" && !value) { s.mic = []; s.micLen = 0; }
    },
    report(stats) { Object.assign(s.stats, stats); },
    onChange(fn) { changeFns.add(fn); return () => changeFns.delete(fn); },
    // page side: the phone's latest view from GET /_labkit/phones
    update(view) {
      const before = s.view ? s.view.state : null;
      s.view = view;
      if (!view || before !== view.state) for (const fn of changeFns) fn();
    },
    figures() {
      const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v.length ? v[v.length >> 1] : null; };
      return { ...s.stats, mic_delay_ms: median(s.micDelays), mic_frames_dropped: Math.round(s.micDropped),
               backlog_frames_dropped: Math.round(s.backlogDropped), transport_error: s.error };
    },
  };
}
