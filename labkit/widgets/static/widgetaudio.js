// The notebook's host for callaudio.js: the anywidget module of labkit.widgets.call_audio.CallAudio.
//
// Two ways between the page and the kernel, and the page says which it uses ("audio: direct to the lab" /
// "audio: through Jupyter"):
//   * direct: a WebSocket to the lab's own server (`/browser-audio`, labkit/server/browser_audio.py), at
//     the URL and one-widget token the kernel puts in the `direct_url` trait; the messages of the sandbox
//     page's phone socket (wstransport.js). Kernel -> socket -> this page, no hop in between.
//   * through Jupyter: the widget's comm (kernel -> Jupyter server -> this page), which every notebook host
//     has. Used while the socket is not open: before it opens, when the page cannot reach the lab (Jupyter on
//     another machine, a firewall, an https page that may not open ws://), or when the kernel asks for it
//     (`CallAudio.use_direct(False)`, an empty `direct_url`).
// The kernel sends the call's audio down the socket when the socket asked for it (`{"listen": true}`), else
// down the comm while the page listens; the microphone goes up the socket when it is open, else the comm.
// call_audio.py joins wstransport.js, callaudio.js and this file into one module (anywidget loads one), so
// the imports below are for reading and for a page that loads the files themselves.
import { createCallAudio } from "./callaudio.js";
import { audioSocket } from "./wstransport.js";

const DIRECT_TRIES = 3; // closes in a row, never open in between, before the page stays on the comm

export function notebookTransport(model) {
  const audioFns = new Set(), changeFns = new Set();
  const changed = () => {
    const path = socket.isOpen() ? "direct" : "jupyter";
    if (model.get("audio_path") !== path) { model.set("audio_path", path); model.save_changes(); }
    for (const fn of changeFns) fn();
  };
  const socket = audioSocket({
    url: () => model.get("direct_url"),
    rate: () => model.get("rate"),
    onAudio: (pcm, rate, meta) => { for (const fn of audioFns) fn(pcm, rate, meta); },
    onChange: changed,
    maxFailures: DIRECT_TRIES,
  });
  let last = {};
  const comm = (msg, buffers) => {
    if (!msg || msg.type !== "audio" || !buffers || !buffers.length) return;
    // The kernel sends down the comm only while the socket does not listen: what still arrives once it does
    // was on its way before (Jupyter's queues), and played after the socket's newer audio it would be late
    // and stay so. Dropped: a gap of that in-flight audio, once, at the switch.
    if (socket.isOpen() && socket.state.listening) return;
    const view = buffers[0];
    const bytes = view.buffer ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : new Uint8Array(view);
    const pcm = new Int16Array(bytes.slice().buffer);
    for (const fn of audioFns) fn(pcm, msg.rate, msg);
  };
  model.on("msg:custom", comm);
  const redirect = () => { socket.want(false); socket.want(!!model.get("direct_url")); changed(); };
  model.on("change:direct_url", redirect);
  redirect();

  return {
    // Through the comm the microphone goes in 40 ms pieces: each message from the page is a shell message
    // to the kernel (and two status messages back to every page); the socket takes 20 ms ones.
    get micChunkMs() { return socket.isOpen() ? 20 : 40; },
    rate: () => model.get("rate"),
    source: () => model.get("source"),
    path() {
      if (socket.isOpen()) return "audio: direct to the lab";
      const url = model.get("direct_url"), error = socket.state.error;
      if (!url) return "audio: through Jupyter";
      const where = url.replace(/^wss?:\/\//, "").replace(/\/.*$/, "");
      if (!error) return `audio: through Jupyter (connecting to the lab at ${where})`;
      if (error.startsWith("closed (1006")) return `audio: through Jupyter (this page cannot reach the lab at ${where})`;
      return `audio: through Jupyter (the direct connection to the lab ${error})`;
    },
    onAudio(fn) { audioFns.add(fn); return () => audioFns.delete(fn); },
    sendMic(pcm, rate, t) {
      if (socket.sendMic(pcm, rate, t)) return;
      model.send({ type: "mic", rate, t }, undefined, [pcm.buffer]);
    },
    setState(name, value) {
      if (name === "listening") socket.setListening(value);
      model.set(name, value);
      model.save_changes();
    },
    report(stats) {
      let dirty = false;
      for (const [k, v] of Object.entries(stats)) {
        if (last[k] !== v) { model.set(k, v); dirty = true; }
      }
      if (dirty) { last = { ...last, ...stats }; model.save_changes(); }
    },
    onChange(fn) {
      changeFns.add(fn);
      model.on("change:source", fn);
      model.on("change:rate", fn);
      return () => { changeFns.delete(fn); model.off("change:source", fn); model.off("change:rate", fn); };
    },
    close() {
      model.off("msg:custom", comm);
      model.off("change:direct_url", redirect);
      socket.want(false);
    },
  };
}

export default {
  render({ model, el }) {
    const transport = notebookTransport(model);
    const stop = createCallAudio(el, transport);
    return () => { stop(); transport.close(); };
  },
};
