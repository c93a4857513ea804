// Socket.IO peer of the cluster scenario: every "m" event a client emits is
// emitted to every socket of every node (io.emit, the sender included), the
// way Socket.IO's own chat example broadcasts. With --broker redis://HOST:PORT
// the nodes share broadcasts through @socket.io/redis-adapter (classic
// adapter: Redis PUBLISH, one message per emit) on two node-redis clients,
// as the adapter's README sets it up; without it the node runs alone on the
// default in-memory adapter.
//
//	node server.js --addr 127.0.0.1:9001 [--broker redis://127.0.0.1:6379]
//
// WebSocket transport only (no HTTP long-polling, so every client is on one
// node from its first packet), no permessage-deflate, 16 MiB message limit.
// GET /debug/vars answers {connections, rss}. Prints "listening on ADDR"
// when ready; SIGINT/SIGTERM close everything and exit 0.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function flag(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

async function main() {
  const addr = flag("addr", "127.0.0.1:8080");
  const broker = flag("broker", "");
  const sep = addr.lastIndexOf(":");
  const host = addr.slice(0, sep);
  const port = Number(addr.slice(sep + 1));

  let connections = 0;
  const httpServer = http.createServer((req, res) => {
    if (req.url === "/debug/vars") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ connections, rss: process.memoryUsage.rss() }));
      return;
    }
    // socket.io answers its own path; anything else is not found.
    if (!req.url.startsWith("/socket.io/")) {
      res.statusCode = 404;
      res.end();
    }
  });
  const io = new Server(httpServer, {
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    maxHttpBufferSize: 16 << 20,
  });

  if (broker !== "") {
    if (!broker.startsWith("redis://")) {
      throw new Error("--broker " + broker + ": the Redis adapter needs redis://HOST:PORT");
    }
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: broker });
    const subClient = pubClient.duplicate();
    for (const c of [pubClient, subClient]) {
      c.on("error", (err) => console.error("redis:", err.message));
    }
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }

  io.on("connection", (socket) => {
    connections++;
    socket.on("m", (data) => io.emit("m", data));
    socket.on("disconnect", () => connections--);
  });

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(port, host, resolve);
  });
  const a = httpServer.address();
  console.log(`listening on ${a.address}:${a.port}`);

  // Close the sockets, then exit: the Redis connections end with the
  // process (disconnecting them first rejects the adapter's pending
  // requests, which node-redis reports as unhandled errors).
  const stop = () => {
    io.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
