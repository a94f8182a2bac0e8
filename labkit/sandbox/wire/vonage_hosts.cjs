// labkit sandbox: Vonage's API host names -> the sandbox, inside this Node process only (no root, no hosts file).
//
//   export LABKIT_VONAGE_HOSTS_TO=127.0.0.1:PORT        (the sandbox's address; `labkit sandbox --vonage-proxy`
//   export NODE_OPTIONS="--require <this file>"          prints these lines)
//   export NODE_EXTRA_CA_CERTS=<the sandbox's ca.pem>
//
// Why: Node's http/https modules ignore HTTPS_PROXY, so clients with hard-coded hosts (the `nexmo` 2.x
// package, Node-RED's node-red-contrib-nexmo, @vonage/server-sdk without apiHost) cannot use the sandbox's
// CONNECT proxy. Every TCP connection in Node (http, https, tls, net, fetch/undici, ws) ends in
// net.Socket.prototype.connect; a connection to one of Vonage's API hosts on port 443 is sent to the
// sandbox's address instead. TLS still names the Vonage host (SNI and certificate check), which the
// sandbox's --vonage-hostnames certificate covers. Every other host and port is left alone.
// The names are those of labkit/sandbox/wire/vonage_proxy.py (VONAGE_API_HOST): keep them in step.
'use strict';
const net = require('net');

const VONAGE_API_HOST = /^(?:api\.nexmo\.com|rest\.nexmo\.com|api\.vonage\.com|api-[a-z0-9-]+\.(?:vonage|nexmo)\.com)$/;
const to = process.env.LABKIT_VONAGE_HOSTS_TO || '';
const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(to);

function redirected(options) {
  if (!options || typeof options !== 'object' || options.path) return null;
  const host = String(options.host || '').toLowerCase().replace(/\.$/, '');
  const port = Number(options.port || 0);
  if (port !== 443 || !VONAGE_API_HOST.test(host)) return null;
  return Object.assign({}, options, { host: match[1], port: Number(match[2]) });
}

if (!match) {
  if (to) process.emitWarning(`LABKIT_VONAGE_HOSTS_TO=${to} is not host:port; Vonage's hosts are not redirected`);
} else if (!net.Socket.prototype.connect.labkitVonageHosts) {
  const connect = net.Socket.prototype.connect;
  const patched = function (...args) {
    if (Array.isArray(args[0])) {  // net.connect(...) passes its normalized [options, callback] array
      const options = redirected(args[0][0]);
      if (options) args[0][0] = options;
    } else if (args[0] && typeof args[0] === 'object') {  // socket.connect(options[, callback]), as tls does
      const options = redirected(args[0]);
      if (options) args[0] = options;
    } else if (typeof args[1] === 'string') {  // socket.connect(port, host[, callback])
      const options = redirected({ port: args[0], host: args[1] });
      if (options) { args[0] = options.port; args[1] = options.host; }
    }
    return connect.apply(this, args);
  };
  patched.labkitVonageHosts = true;
  net.Socket.prototype.connect = patched;
}
