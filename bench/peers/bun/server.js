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

// Text arrives as a string and binary as a Buffer; send and publish keep
// the opcode that way.
const handlers = {
  echo: (ws, message) => { ws.send(message); },
  broadcast: (ws, message) => { server.publish(TOPIC, message); },
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
    perMessageDeflate: false,
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
