'use strict';
// uWebSockets.js peer server of the megaws benchmark, run by Node:
//
//   node uws/server.js --addr 127.0.0.1:9006 [--admin 127.0.0.1:9106] [--mode echo|broadcast|sink]
//
// WebSocket on any path; /debug/vars answers JSON {connections, rss} on the
// main server and, with --admin, on its own listener too. Broadcast publishes
// on one topic every connection subscribes to; app.publish (unlike
// ws.publish) includes the sender.

const uWS = require('uWebSockets.js');

const { MAX_MESSAGE_SIZE, TOPIC, parseArgs, splitHostPort } = require('../common.js');

const opts = parseArgs(process.argv.slice(2));
let connections = 0;

function debugVars(res) {
  const body = JSON.stringify({ connections, rss: process.memoryUsage.rss() });
  res.writeHeader('Content-Type', 'application/json').end(body);
}

// --compression: uWS's shared compressor and decompressor without context
// takeover (0), or a dedicated pair per socket with a window of 2^bits bytes
// each way (the DEDICATED_*_xKB constants encode zlib's windowBits; 9 is
// the smallest).
function compressionOption(bits) {
  if (bits < 0) return uWS.DISABLED;
  if (bits === 0) return uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR;
  const w = Math.max(bits, 9);
  const compressor = { 9: '4KB', 10: '8KB', 11: '16KB', 12: '32KB', 13: '64KB', 14: '128KB', 15: '256KB' }[w];
  const decompressor = { 9: '512B', 10: '1KB', 11: '2KB', 12: '4KB', 13: '8KB', 14: '16KB', 15: '32KB' }[w];
  return uWS['DEDICATED_COMPRESSOR_' + compressor] | uWS['DEDICATED_DECOMPRESSOR_' + decompressor];
}
// send and publish compress only when asked to.
const compress = opts.compression >= 0;

const handlers = {
  echo: (ws, message, isBinary) => { ws.send(message, isBinary, compress); },
  broadcast: (ws, message, isBinary) => { app.publish(TOPIC, message, isBinary, compress); },
  sink: () => {},
};

const app = uWS.App().ws('/*', {
  compression: compressionOption(opts.compression),
  maxPayloadLength: MAX_MESSAGE_SIZE,
  // The 64 KiB default drops sends (silently) once that much is queued for a
  // slow reader; 16 MiB is Bun's default limit.
  maxBackpressure: MAX_MESSAGE_SIZE,
  // No idle timeout, like the Go peers (the default closes after 120 s).
  idleTimeout: 0,
  open: (ws) => {
    if (opts.mode === 'broadcast') ws.subscribe(TOPIC);
    connections++;
  },
  message: handlers[opts.mode],
  close: () => { connections--; },
}).get('/debug/vars', debugVars);

const listenSockets = [];

function listen(server, addr, onReady) {
  const [host, port] = splitHostPort(addr);
  server.listen(host, port, (token) => {
    if (!token) {
      console.error(`listen ${addr} failed`);
      process.exit(1);
    }
    listenSockets.push(token);
    onReady(`${host}:${uWS.us_socket_local_port(token)}`);
  });
}

if (opts.admin) {
  listen(uWS.App().get('/debug/vars', debugVars), opts.admin, () => {});
}
listen(app, opts.addr, (addr) => console.log(`listening on ${addr}`));

function shutdown() {
  for (const token of listenSockets) uWS.us_listen_socket_close(token);
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
