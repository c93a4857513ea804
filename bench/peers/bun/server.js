// Bun peer server of the megaws benchmark: Bun.serve with websocket handlers
// (uWebSockets inside Bun):
//
//   DO_NOT_TRACK=1 bun bun/server.js --addr 127.0.0.1:9005 [--admin 127.0.0.1:9105] [--mode echo|broadcast|sink]
//
// WebSocket on any path; a plain GET of /debug/vars answers JSON
// {connections, rss} on the main server and, with --admin, on its own
// listener too. Broadcast publishes on one topic every connection subscribes
// to; server.publish (unlike ws.publish) includes the sender.

const { MAX_MESSAGE_SIZE, TOPIC, parseArgs, splitHostPort } = require('../common.js');

const opts = parseArgs(process.argv.slice(2));
let connections = 0;

function debugVars(req) {
  if (new URL(req.url).pathname !== '/debug/vars') return new Response('not found', { status: 404 });
  return Response.json({ connections, rss: process.memoryUsage.rss() });
}

// --compression: Bun's shared compressor and decompressor without context
// takeover (0), or a dedicated compressor with a window of 2^bits bytes (Bun
// names uWS's DEDICATED_COMPRESSOR_xKB by their memory) and a dedicated
// decompressor.
function perMessageDeflate(bits) {
  if (bits < 0) return false;
  if (bits === 0) return { compress: 'shared', decompress: 'shared' };
  const compress = { 9: '4KB', 10: '8KB', 11: '16KB', 12: '32KB', 13: '64KB', 14: '128KB', 15: '256KB' }[Math.max(bits, 9)];
  return { compress, decompress: 'dedicated' };
}
// send and publish compress only when asked to.
const compress = opts.compression >= 0;

// Text arrives as a string and binary as a Buffer; send and publish keep
// the opcode that way.
const handlers = {
  echo: (ws, message) => { ws.send(message, compress); },
  broadcast: (ws, message) => { server.publish(TOPIC, message, compress); },
  sink: () => {},
};

const [hostname, port] = splitHostPort(opts.addr);
const server = Bun.serve({
  hostname,
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return undefined;
    return debugVars(req);
  },
  websocket: {
    maxPayloadLength: MAX_MESSAGE_SIZE,
    perMessageDeflate: perMessageDeflate(opts.compression),
    backpressureLimit: MAX_MESSAGE_SIZE, // Bun's default, stated
    // No idle timeout, like the Go peers (the default closes after 120 s).
    idleTimeout: 0,
    open(ws) {
      if (opts.mode === 'broadcast') ws.subscribe(TOPIC);
      connections++;
    },
    message: handlers[opts.mode],
    close() { connections--; },
  },
});

const servers = [server];
if (opts.admin) {
  const [adminHost, adminPort] = splitHostPort(opts.admin);
  servers.push(Bun.serve({ hostname: adminHost, port: adminPort, fetch: debugVars }));
}
console.log(`listening on ${hostname}:${server.port}`);

function shutdown() {
  for (const s of servers) s.stop(true);
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
