// The control-API transport for callaudio.js: one virtual phone of a standalone sandbox, over one WebSocket
// on the page's own origin (`/_labkit/phones/{number}/audio`). You are that phone: Listen plays what it
// hears, Talk is its voice.
//
// The socket is open while you listen or talk, and carries both: the sandbox pushes each 20 ms the phone
// hears as a binary message (16-bit PCM at 16 kHz) the moment its clock mixes it, and the page sends the
// microphone as binary messages of the same format, 20 ms each. The sandbox puts the voice into the call
// through a jitter buffer sized from how the pieces arrive (labkit/media/jitter.py) and says, every 25
// pieces, how late the voice is by stage. One socket per phone: a listening phone holds none of the
// browser's ~6 HTTP connections per origin (the page's polls keep working).

const RATE = 16000; // what a virtual phone hears at (heard_rate in the control API)
const T_EVERY = 10; // date every 10th piece of voice ({"t": ...} before it): the wire's delay, measured
const MAX_BUFFERED = RATE * 2 * 0.1; // bytes: drop the microphone while 100 ms wait in the socket (a stall)

export function wsTransport(api, number) {
  const audioFns = new Set(), changeFns = new Set();
  const s = {
    view: null, listening: false, talking: false, ws: null, retry: null, meta: null, sent: 0,
    mic: {}, micDropped: 0, stats: {}, error: "",
  };
  const answered = () => s.view && s.view.state === "answered";
  const url = () => `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${api}/phones/${encodeURIComponent(number)}/audio`;

  function open() {
    if (s.ws || s.retry || !(s.listening || s.talking)) return;
    const ws = new WebSocket(url());
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    ws.onopen = () => { ws.send(JSON.stringify({ listen: s.listening })); s.error = ""; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.t !== undefined) s.meta = msg; // describes the next binary message
        if (msg.mic) s.mic = msg.mic;
        return;
      }
      const meta = s.meta;
      s.meta = null;
      if (s.listening) for (const fn of audioFns) fn(new Int16Array(ev.data), RATE, meta);
    };
    ws.onclose = (ev) => {
      if (s.ws !== ws) return;
      s.ws = null;
      if (!(s.listening || s.talking)) return;
      s.error = `The phone's audio connection closed (${ev.code}${ev.reason ? ": " + ev.reason : ""}); reconnecting.`;
      s.retry = setTimeout(() => { s.retry = null; open(); }, 500);
    };
  }

  function close() {
    if (s.retry) { clearTimeout(s.retry); s.retry = null; }
    const ws = s.ws;
    s.ws = null;
    if (ws) ws.close(1000);
  }

  return {
    rate: () => RATE,
    source: () => (answered() ? `what ${number} hears (you are that phone)` : ""),
    onAudio(fn) { audioFns.add(fn); return () => audioFns.delete(fn); },
    sendMic(pcm, rate, t) {
      const ws = s.ws;
      if (!answered() || !ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED) {
        s.micDropped += pcm.length / (rate * 0.02); // no call to speak into, or the socket is behind
        return;
      }
      if (s.sent++ % T_EVERY === 0) ws.send(JSON.stringify({ t }));
      ws.send(pcm.buffer);
    },
    setState(name, value) {
      s[name] = value;
      if (!(s.listening || s.talking)) { close(); return; }
      if (s.ws && s.ws.readyState === WebSocket.OPEN && name === "listening") s.ws.send(JSON.stringify({ listen: value }));
      open();
    },
    report(stats) { Object.assign(s.stats, stats); },
    onChange(fn) { changeFns.add(fn); return () => changeFns.delete(fn); },
    // page side: the phone's latest view from GET /_labkit/phones
    update(view) {
      const before = s.view ? s.view.state : null;
      s.view = view;
      if (!view || before !== view.state) for (const fn of changeFns) fn();
    },
    close,
    figures() {
      // the sandbox measures the voice (it sees each piece arrive and how much waits ahead of it)
      return { ...s.stats, mic_delay_ms: s.mic.mic_delay_ms ?? null, mic_delay_parts: s.mic.mic_delay_parts || "",
               mic_jitter_ms: s.mic.mic_jitter_ms ?? null, mic_frames_dropped: Math.round(s.micDropped) + (s.mic.mic_frames_dropped || 0),
               transport_error: s.error };
    },
  };
}
