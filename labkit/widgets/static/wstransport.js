// Call audio over one WebSocket, both ways: the transport of callaudio.js when the page talks to an audio
// server directly. Two servers speak it, with the same messages:
//   * a standalone sandbox's phone socket (`/_labkit/phones/{number}/audio`, on the page's own origin):
//     `wsTransport(api, number)` below; you are that phone, Listen plays what it hears, Talk is its voice;
//   * the lab's `/browser-audio` socket (labkit/server/browser_audio.py), which a notebook panel opens
//     beside Jupyter's comm (see widgetaudio.js): the kernel hands it the URL and a token.
//
// Out of the server: each 20 ms of call audio as one binary message (16-bit PCM), the moment the call has
// it; now and then a text message `{"t", "age_ms", "rate"?}` describing the binary message after it (a
// `rate` in any text message holds until the next). Into the server: the microphone as binary messages of
// the same format, 20 ms each; `{"listen": bool}`; `{"t": epoch_ms}` dates the next piece. Back every 25
// pieces: `{"mic": {...}}`, the voice's delay by stage, measured where it goes into the call.

const T_EVERY = 10; // date every 10th piece of voice ({"t": ...} before it): the wire's delay, measured
const REPLACED = 4000; // the server's close code for "a newer connection took this one's place": no retry
const MAX_BUFFERED_S = 0.1; // drop the microphone while this much waits in the socket (a stall)

export function audioSocket({ url, rate, onAudio, onChange = () => {}, retryMs = 500, maxFailures = Infinity }) {
  // One connection, opened while wanted and reopened when it closes (after retryMs, up to maxFailures
  // closes in a row before it ever opened again). `onAudio(pcm, rate, meta)` while listening.
  const s = {
    ws: null, retry: null, meta: null, rate: 0, sent: 0, mic: {}, micDropped: 0, error: "", wanted: false,
    listening: false, failures: 0,
  };
  const isOpen = () => !!s.ws && s.ws.readyState === WebSocket.OPEN;

  function fail(text) {
    s.error = text;
    s.failures++;
    onChange();
    if (s.wanted && s.failures < maxFailures) s.retry = setTimeout(() => { s.retry = null; open(); }, retryMs);
  }

  function open() {
    if (s.ws || s.retry || !s.wanted) return;
    let ws;
    try {
      ws = new WebSocket(url());
    } catch (err) { // a bad URL, or ws:// from an https page where the browser forbids it
      fail(`the browser refused the connection (${(err && err.name) || "error"})`);
      return;
    }
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    ws.onopen = () => { ws.send(JSON.stringify({ listen: s.listening })); s.error = ""; s.failures = 0; onChange(); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (typeof msg.rate === "number") s.rate = msg.rate;
        if (msg.t !== undefined) s.meta = msg; // describes the next binary message
        if (msg.mic) s.mic = msg.mic;
        return;
      }
      const meta = s.meta;
      s.meta = null;
      if (s.listening) onAudio(new Int16Array(ev.data), s.rate || rate(), meta);
    };
    ws.onclose = (ev) => {
      if (s.ws !== ws) return;
      s.ws = null;
      if (!s.wanted) return;
      if (ev.code === REPLACED) { s.error = "is used by another view of this widget"; s.failures = maxFailures; onChange(); return; }
      fail(`closed (${ev.code}${ev.reason ? ": " + ev.reason : ""})`);
    };
  }

  function close() {
    if (s.retry) { clearTimeout(s.retry); s.retry = null; }
    const ws = s.ws;
    s.ws = null;
    if (ws) ws.close(1000);
  }

  return {
    isOpen,
    want(on) {
      s.wanted = on;
      if (on) { s.failures = 0; open(); } else close();
    },
    setListening(on) {
      s.listening = on;
      if (isOpen()) s.ws.send(JSON.stringify({ listen: on }));
    },
    sendMic(pcm, rate, t) {
      // false when not sent (no connection, or a stall has 100 ms waiting in it)
      const ws = s.ws;
      if (!isOpen() || ws.bufferedAmount > rate * 2 * MAX_BUFFERED_S) return false;
      if (s.sent++ % T_EVERY === 0) ws.send(JSON.stringify({ t }));
      ws.send(pcm.buffer);
      return true;
    },
    gaveUp: () => s.failures >= maxFailures,
    close,
    state: s,
  };
}

const PHONE_RATE = 16000; // what a virtual phone hears at (heard_rate in the control API)

export function wsTransport(api, number) {
  // The sandbox page's transport: the socket is open while you listen or talk; one socket per phone, so
  // a listening phone holds none of the browser's ~6 HTTP connections per origin (the page's polls work).
  const audioFns = new Set(), changeFns = new Set();
  let view = null, listening = false, talking = false;
  const stats = {};
  const answered = () => view && view.state === "answered";
  const socket = audioSocket({
    url: () => `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${api}/phones/${encodeURIComponent(number)}/audio`,
    rate: () => PHONE_RATE,
    onAudio: (pcm, rate, meta) => { for (const fn of audioFns) fn(pcm, rate, meta); },
  });

  return {
    rate: () => PHONE_RATE,
    source: () => (answered() ? `what ${number} hears (you are that phone)` : ""),
    onAudio(fn) { audioFns.add(fn); return () => audioFns.delete(fn); },
    sendMic(pcm, rate, t) {
      if (!answered() || !socket.sendMic(pcm, rate, t)) socket.state.micDropped += pcm.length / (rate * 0.02); // no call to speak into, or the socket is behind
    },
    setState(name, value) {
      if (name === "listening") { listening = value; socket.setListening(value); }
      if (name === "talking") talking = value;
      socket.want(listening || talking);
    },
    report(s) { Object.assign(stats, s); },
    onChange(fn) { changeFns.add(fn); return () => changeFns.delete(fn); },
    // page side: the phone's latest view from GET /_labkit/phones
    update(next) {
      const before = view ? view.state : null;
      view = next;
      if (!next || before !== next.state) for (const fn of changeFns) fn();
    },
    close: socket.close,
    figures() {
      // the sandbox measures the voice (it sees each piece arrive and how much waits ahead of it)
      const s = socket.state;
      return { ...stats, mic_delay_ms: s.mic.mic_delay_ms ?? null, mic_delay_parts: s.mic.mic_delay_parts || "",
               mic_jitter_ms: s.mic.mic_jitter_ms ?? null, mic_frames_dropped: Math.round(s.micDropped) + (s.mic.mic_frames_dropped || 0),
               transport_error: s.error && s.wanted ? `The phone's audio connection ${s.error}; reconnecting.` : "" };
    },
  };
}
