// The IVR against `labkit sandbox` running as a service: its settings come from the environment
// (LABKIT_SANDBOX_URL, VONAGE_APPLICATION_ID, VONAGE_API_KEY/SECRET; NODE_EXTRA_CA_CERTS trusts its CA),
// the application is pointed at this app through the Application API as on Vonage, and calls are driven
// through the sandbox's control API (/_labkit/), whose waits are long polls.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createApp, GREETING } = require('../app');

const SANDBOX = process.env.LABKIT_SANDBOX_URL;
const CALLER = '447700900001';
let server;
let app;

async function control(method, path, body) {
  const res = await fetch(`${SANDBOX}/_labkit/${path}`, {
    method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} /_labkit/${path}: ${res.status} ${await res.text()}`);
  return res.headers.get('content-type').includes('json') ? res.json() : res.arrayBuffer();
}

// a long poll: the sandbox answers when the call gets there (or after 20 s: then check the answer)
const waitCall = (uuid, until) => control('GET', `calls/${uuid}?wait=20&until=${encodeURIComponent(until)}`);

before(async () => {
  assert.ok(SANDBOX, 'start `labkit sandbox` and export its settings (see docs/TESTING.md)');
  app = createApp();
  server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const base = `http://127.0.0.1:${server.address().port}`;
  const basic = Buffer.from(`${process.env.VONAGE_API_KEY}:${process.env.VONAGE_API_SECRET}`).toString('base64');
  const res = await fetch(`${SANDBOX}/v2/applications/${process.env.VONAGE_APPLICATION_ID}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Authorization: `Basic ${basic}` },
    body: JSON.stringify({
      name: 'express ivr',
      capabilities: { voice: { webhooks: {
        answer_url: { address: `${base}/answer`, http_method: 'GET' },
        event_url: { address: `${base}/event`, http_method: 'POST' },
      } } },
    }),
  });
  assert.equal(res.status, 200, await res.text());
});

after(() => server.close());

test('the caller hears the menu, presses 2 and is told support', async () => {
  await control('POST', 'reset');
  await control('POST', 'phones', { number: CALLER, answer_after: 0 });
  const { uuid } = await control('POST', `phones/${CALLER}/dial`, {});
  await waitCall(uuid, 'action:input');
  await control('POST', `phones/${CALLER}/press`, { digits: '2' });
  const call = await waitCall(uuid, 'finished');
  assert.equal(call.status, 'completed');
  assert.equal(call.ended_by, 'ncco');
  assert.deepEqual(call.played.map((p) => p.text), [GREETING, 'You chose support. Goodbye.']);
  const input = call.webhooks.find((w) => w.kind === 'instruction');
  assert.deepEqual(input.payload.dtmf, { digits: '2', timed_out: false });
  const heard = await control('GET', `phones/${CALLER}/heard.wav?call=${uuid}`);
  const last = call.played[call.played.length - 1];
  assert.ok(heard.byteLength > 2 * 16000 * (last.at + last.seconds), 'the caller heard the whole call');
  assert.deepEqual(app.locals.events.filter((e) => e.uuid === uuid).map((e) => e.status).slice(-1), ['completed']);
});

test('no key: the caller is told it is not an option', async () => {
  await control('POST', 'reset');
  await control('POST', 'phones', { number: CALLER, answer_after: 0 });
  const { uuid } = await control('POST', `phones/${CALLER}/dial`, {});
  const call = await waitCall(uuid, 'finished');
  assert.equal(call.played[1].text, 'Sorry, that is not an option. Goodbye.');
  assert.equal(call.webhooks.find((w) => w.kind === 'instruction').payload.dtmf.timed_out, true);
});
