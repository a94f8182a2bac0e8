// An Express IVR for the Vonage Voice API: a greeting with a one-key menu, and an answer per key.
//   GET  /answer  the answer NCCO: talk, then a DTMF input that posts to /input
//   POST /input   the key pressed: says which option, then the NCCO ends (and with it the call)
//   POST /event   call events (kept in app.locals.events)
// Run it with `node app.js` (PORT, default 3000); test it with `npm test` against `labkit sandbox`.
const express = require('express');

const GREETING = 'Welcome to Acme. Press 1 for sales or 2 for support.';
const CHOICES = { 1: 'sales', 2: 'support' };

function createApp() {
  const app = express();
  app.use(express.json());
  app.locals.events = [];

  app.get('/answer', (req, res) => {
    const base = `${req.protocol}://${req.get('host')}`;
    res.json([
      { action: 'talk', text: GREETING, bargeIn: true },
      { action: 'input', type: ['dtmf'], dtmf: { maxDigits: 1, timeOut: 5 }, eventUrl: [`${base}/input`] },
    ]);
  });

  app.post('/input', (req, res) => {
    const digits = (req.body.dtmf && req.body.dtmf.digits) || '';
    const choice = CHOICES[digits];
    const text = choice ? `You chose ${choice}. Goodbye.` : 'Sorry, that is not an option. Goodbye.';
    res.json([{ action: 'talk', text }]);
  });

  app.post('/event', (req, res) => {
    app.locals.events.push(req.body);
    res.status(204).end();
  });

  return app;
}

module.exports = { createApp, GREETING };

if (require.main === module) {
  const port = Number(process.env.PORT || 3000);
  createApp().listen(port, () => console.log(`IVR on http://127.0.0.1:${port}`));
}
