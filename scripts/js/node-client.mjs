#!/usr/bin/env node
// node-client.mjs — interoperability suite for a megaws echo server, run with the
// npm `ws` client (the WebSocket implementation most Node services use).
//
// Usage:
//   node node-client.mjs URL [--suite echo|compress|broadcast] [--deflate] [--require-deflate]
//                            [--ca FILE] [--timeout SECONDS] [--case-timeout SECONDS]
//
//   URL                ws://host:port/path or wss://host:port/path of an echo server
//                      (of a broadcast server for --suite broadcast)
//   --suite S          echo (default): the echo cases below;
//                      compress: permessage-deflate with ws's default offer
//                      ("permessage-deflate; client_max_window_bits"), threshold 0 so that
//                      ws compresses every message: game-state JSON (~400 B), 64 KiB and
//                      1 MiB JSON and a mixed sequence echoed, with the payload and socket
//                      bytes of each case in "compression" (implies --require-deflate);
//                      broadcast: two clients with that offer and one without compression
//                      on a broadcast server; every message reaches all three, and the
//                      socket bytes of each are in "compression"
//   --deflate          offer permessage-deflate (RFC 7692); report whether the server
//                      accepted it and run the echo cases over the negotiated extension
//   --require-deflate  fail (case "deflate negotiated") if the server did not accept it
//   --ca FILE          PEM certificate(s) to trust for wss:// (e.g. a self-signed cert)
//   --timeout S        hard limit for the whole run (default 60)
//   --case-timeout S   limit for one case (default 15)
//
// Prints exactly one JSON object on stdout:
//   {"client":"node-ws", "url":..., "deflate":{...}, "compression":{...},
//    "cases":[{"name","pass","detail","ms"}], "passed":N, "failed":N, "ok":bool}
// and exits 0 only if every case passed. Every case uses its own connection, so one
// broken case cannot poison the others.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const wsVersion = require('ws/package.json').version;

function usage(msg) {
  if (msg) process.stderr.write(`node-client: ${msg}\n`);
  process.stderr.write('usage: node node-client.mjs URL [--suite echo|compress|broadcast] [--deflate] [--require-deflate] [--ca FILE] [--timeout S] [--case-timeout S]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: '', suite: 'echo', deflate: false, requireDeflate: false, ca: null, timeout: 60, caseTimeout: 15 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--suite': opts.suite = value(); break;
      case '--deflate': opts.deflate = true; break;
      case '--require-deflate': opts.deflate = true; opts.requireDeflate = true; break;
      case '--ca': opts.ca = value(); break;
      case '--timeout': opts.timeout = Number(value()); break;
      case '--case-timeout': opts.caseTimeout = Number(value()); break;
      case '-h': case '--help': usage(); break;
      default:
        if (a.startsWith('-')) usage(`unknown option ${a}`);
        if (opts.url) usage(`unexpected argument ${a}`);
        opts.url = a;
    }
  }
  if (!/^wss?:\/\//.test(opts.url)) usage('URL must start with ws:// or wss://');
  if (!(opts.timeout > 0) || !(opts.caseTimeout > 0)) usage('timeouts must be positive numbers');
  if (!['echo', 'compress', 'broadcast'].includes(opts.suite)) usage(`unknown --suite ${opts.suite}`);
  if (opts.suite !== 'echo') opts.deflate = opts.requireDeflate = true;
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const caPEM = opts.ca ? readFileSync(opts.ca) : null;

const report = {
  client: 'node-ws',
  wsVersion,
  node: process.version,
  url: opts.url,
  suite: opts.suite,
  deflate: { requested: opts.deflate, required: opts.requireDeflate, negotiated: null, extensions: null },
  // --suite compress|broadcast: what was offered and answered, and per case (or per
  // client) the payload bytes sent and received and the socket bytes written and read.
  compression: null,
  cases: [],
  passed: 0,
  failed: 0,
  ok: false,
};

let printed = false;
function finish(extra) {
  if (printed) return;
  printed = true;
  if (extra) report.error = extra;
  report.passed = report.cases.filter((c) => c.pass).length;
  report.failed = report.cases.length - report.passed;
  report.ok = !extra && report.failed === 0 && report.cases.length > 0;
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exitCode = report.ok ? 0 : 1;
}

// The whole run can never hang: print what we have and leave.
const hardStop = setTimeout(() => {
  finish(`run exceeded ${opts.timeout}s`);
  process.exit(1);
}, opts.timeout * 1000);
hardStop.unref();

// connect opens a client and buffers everything it receives, so a case can await
// messages in order without racing the event emitter. deflate defaults to --deflate.
function connect(deflate = opts.deflate) {
  return new Promise((resolve, reject) => {
    const clientOpts = {
      // ws offers permessage-deflate by default; state it either way. threshold 0 makes
      // even "hello" go through the compressor, so the server's inflater sees every case.
      // The offer is ws's default either way: "permessage-deflate; client_max_window_bits".
      perMessageDeflate: deflate ? { threshold: 0 } : false,
      handshakeTimeout: opts.caseTimeout * 1000,
      maxPayload: 64 << 20,
    };
    if (caPEM) clientOpts.ca = caPEM;
    const ws = new WebSocket(opts.url, clientOpts);
    ws.binaryType = 'nodebuffer';
    const inbox = [];
    const waiters = [];
    const state = { ws, inbox, closed: null, pongs: [], error: null, offer: null, response: null };
    // The request is built in the constructor and dropped once upgraded.
    if (ws._req) state.offer = ws._req.getHeader('sec-websocket-extensions') || '';
    ws.on('upgrade', (res) => { state.response = res.headers['sec-websocket-extensions'] || ''; });
    const wake = () => {
      while (waiters.length) waiters.shift()();
    };
    ws.on('message', (data, isBinary) => {
      inbox.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data), isBinary });
      wake();
    });
    ws.on('pong', (data) => {
      state.pongs.push(Buffer.from(data));
      wake();
    });
    ws.on('close', (code, reason) => {
      state.closed = { code, reason: reason.toString('utf8') };
      wake();
    });
    ws.on('error', (err) => {
      state.error = err;
      wake();
      reject(err);
    });
    ws.on('open', () => resolve(state));
    // waitFor resolves when pred() is truthy; rejects on error/close-before/timeout.
    state.waitFor = (what, pred, ms = opts.caseTimeout * 1000) =>
      new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        const check = () => {
          let v;
          try {
            v = pred();
          } catch (e) {
            clearTimeout(timer);
            rej(e);
            return;
          }
          if (v) {
            clearTimeout(timer);
            res(v);
          } else if (state.error) {
            clearTimeout(timer);
            rej(new Error(`connection error while waiting for ${what}: ${state.error.message}`));
          } else if (state.closed) {
            clearTimeout(timer);
            rej(new Error(`connection closed (code ${state.closed.code}, reason ${JSON.stringify(state.closed.reason)}) while waiting for ${what}`));
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    state.next = (what = 'a message') => state.waitFor(what, () => (inbox.length ? inbox.shift() : null));
  });
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectText(msg, want, label = 'echo') {
  if (msg.isBinary) throw new Error(`${label}: got a binary message, want text`);
  const got = msg.data.toString('utf8');
  if (got !== want) {
    const i = firstDiff(got, want);
    throw new Error(`${label}: text differs at char ${i} (got ${got.length} chars, want ${want.length}): got ${JSON.stringify(got.slice(i, i + 24))}, want ${JSON.stringify(want.slice(i, i + 24))}`);
  }
}

function expectBinary(msg, want, label = 'echo') {
  if (!msg.isBinary) throw new Error(`${label}: got a text message, want binary`);
  if (!msg.data.equals(want)) {
    const i = firstDiff(msg.data, want);
    throw new Error(`${label}: bytes differ at offset ${i} (got ${msg.data.length} bytes, want ${want.length})`);
  }
}

// closeQuietly ends a case's connection without waiting long for the server.
async function closeQuietly(c) {
  if (!c || c.closed || c.ws.readyState === WebSocket.CLOSED) return;
  try {
    c.ws.close(1000, 'case done');
    await c.waitFor('close', () => c.closed, 2000);
  } catch {
    c.ws.terminate();
  }
}

// One MiB of text that is valid UTF-8 but not all ASCII: 1-, 2-, 3- and 4-byte
// sequences, so a server that validates UTF-8 (RFC 6455 §8.1) does real work.
function bigText(bytes) {
  const unit = 'megaws ünïcødé ✓ 世界 🚀 ';
  const unitBytes = Buffer.byteLength(unit);
  let s = unit.repeat(Math.floor(bytes / unitBytes));
  s += 'x'.repeat(bytes - Buffer.byteLength(s));
  return s;
}

const MiB = 1 << 20;

const cases = [
  ['text echo "hello"', async (c) => {
    c.ws.send('hello');
    expectText(await c.next('echo of "hello"'), 'hello');
    return 'got "hello"';
  }],
  ['text echo multi-byte UTF-8', async (c) => {
    const s = 'héllo wörld — Ωμέγα ✓ 日本語 🚀🎉';
    c.ws.send(s);
    expectText(await c.next('echo of the UTF-8 string'), s);
    return `${Buffer.byteLength(s)} bytes round-tripped`;
  }],
  ['binary echo random bytes', async (c) => {
    const b = randomBytes(4096);
    c.ws.send(b, { binary: true });
    expectBinary(await c.next('binary echo'), b);
    return `${b.length} bytes round-tripped`;
  }],
  ['1 MiB text echo', async (c) => {
    const s = bigText(MiB);
    c.ws.send(s);
    expectText(await c.next('1 MiB text echo'), s);
    return `${Buffer.byteLength(s)} bytes identical`;
  }],
  ['1 MiB binary echo', async (c) => {
    const b = randomBytes(MiB);
    c.ws.send(b, { binary: true });
    expectBinary(await c.next('1 MiB binary echo'), b);
    return `${b.length} bytes identical`;
  }],
  ['fragmented text message', async (c) => {
    const parts = ['frag-one|', 'frag-two|', 'frag-three|', 'frag-four'];
    parts.forEach((p, i) => c.ws.send(p, { binary: false, fin: i === parts.length - 1 }));
    const msg = await c.next('the reassembled message');
    expectText(msg, parts.join(''), 'reassembled echo');
    return `${parts.length} frames echoed as one message`;
  }],
  ['fragmented text split inside a UTF-8 code point', async (c) => {
    // RFC 6455 §5.6/§8.1: only the whole message must be valid UTF-8; a code point
    // may straddle fragments (Autobahn 6.x does the same).
    const whole = Buffer.from('split→𝄞←here', 'utf8');
    const cut1 = whole.indexOf(0x86) > 0 ? whole.indexOf(0x86) : 6; // inside "→"
    const cut2 = cut1 + 5; // inside "𝄞"
    const chunks = [whole.subarray(0, cut1), whole.subarray(cut1, cut2), whole.subarray(cut2)];
    chunks.forEach((p, i) => c.ws.send(p, { binary: false, fin: i === chunks.length - 1 }));
    expectText(await c.next('the reassembled message'), whole.toString('utf8'), 'reassembled echo');
    return `${chunks.length} frames split at byte ${cut1} and ${cut2}`;
  }],
  ['fragmented binary message', async (c) => {
    const chunks = [randomBytes(1000), randomBytes(1), randomBytes(70000), randomBytes(0), randomBytes(123)];
    chunks.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === chunks.length - 1 }));
    expectBinary(await c.next('the reassembled message'), Buffer.concat(chunks), 'reassembled echo');
    return `${chunks.length} frames, ${Buffer.concat(chunks).length} bytes`;
  }],
  ['ping with payload gets pong with same payload', async (c) => {
    const payload = Buffer.from('ping-payload-\u00e9-123', 'utf8');
    c.ws.ping(payload);
    const pong = await c.waitFor('pong', () => c.pongs[0]);
    if (!pong.equals(payload)) {
      throw new Error(`pong payload ${JSON.stringify(pong.toString('utf8'))} != ping payload ${JSON.stringify(payload.toString('utf8'))}`);
    }
    // The connection must still carry data after the control frame.
    c.ws.send('after-ping');
    expectText(await c.next('echo after ping'), 'after-ping');
    return `pong carried ${payload.length} bytes`;
  }],
  ['100 pipelined messages echoed in order', async (c) => {
    const n = 100;
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) c.ws.send(`msg-${i}`);
      else c.ws.send(Buffer.from(`bin-${i}`), { binary: true });
    }
    for (let i = 0; i < n; i++) {
      const msg = await c.next(`pipelined message ${i}`);
      if (i % 2 === 0) expectText(msg, `msg-${i}`, `message ${i}`);
      else expectBinary(msg, Buffer.from(`bin-${i}`), `message ${i}`);
    }
    return `${n} messages in order`;
  }],
  ['close 4000 "bye" is echoed', async (c) => {
    c.ws.close(4000, 'bye');
    const closed = await c.waitFor('the server close frame', () => c.closed);
    if (closed.code !== 4000) {
      throw new Error(`close event code ${closed.code} reason ${JSON.stringify(closed.reason)}, want code 4000 (1005 = server sent no status, 1006 = TCP closed without a close frame)`);
    }
    return `server closed with ${closed.code} ${JSON.stringify(closed.reason)}`;
  }],
];

async function runCase(name, fn) {
  const started = Date.now();
  let c = null;
  const entry = { name, pass: false, detail: '', ms: 0 };
  try {
    c = await connect();
    if (report.deflate.negotiated === null) {
      report.deflate.extensions = c.ws.extensions || '';
      report.deflate.negotiated = /permessage-deflate/.test(c.ws.extensions || '');
    }
    entry.detail = await fn(c);
    entry.pass = true;
  } catch (e) {
    entry.detail = e && e.message ? e.message : String(e);
  } finally {
    await closeQuietly(c);
    entry.ms = Date.now() - started;
    report.cases.push(entry);
  }
}

// gameState is a game tick as JSON, about 400 bytes: repetitive from one tick to the
// next, as the traffic context takeover is for.
function gameState(tick) {
  const players = [];
  for (let i = 0; i < 7; i++) {
    players.push({ id: i, x: 100 + i * 7 + (tick % 5), y: 200 + i * 3 - (tick % 3), hp: 100 - ((tick + i) % 9), name: `player-${i}` });
  }
  return JSON.stringify({ t: 'state', tick, players });
}

// bigJSON is about n bytes of game-state-like JSON.
function bigJSON(n, seed) {
  let s = '[';
  for (let t = seed; s.length < n - 500; t++) s += (s.length > 1 ? ',' : '') + gameState(t);
  return (s + ']').padEnd(n, ' ');
}

// socketBytes reads the TCP bytes a client has written and read so far.
const socketBytes = (c) => ({ written: c.ws._socket.bytesWritten, read: c.ws._socket.bytesRead });

// measured runs fn(c, count) on c, where count(sent, received) adds payload bytes,
// and records the payload and socket bytes of the case under name.
async function measured(name, c, fn) {
  const pay = { out: 0, in: 0 };
  const before = socketBytes(c);
  const detail = await fn((o, i) => { pay.out += o; pay.in += i; });
  const after = socketBytes(c);
  const m = { name, payloadOut: pay.out, payloadIn: pay.in, wireOut: after.written - before.written, wireIn: after.read - before.read };
  report.compression.cases.push(m);
  const pct = (a, b) => (b ? ((100 * a) / b).toFixed(1) : '-');
  return `${detail}; on the wire ${pct(m.wireOut, m.payloadOut)}% of the payload sent, ${pct(m.wireIn, m.payloadIn)}% of the payload received`;
}

// echoAll sends each message, one at a time, and checks its echo.
async function echoAll(c, msgs, count) {
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i];
    if (typeof m === 'string') c.ws.send(m);
    else c.ws.send(m, { binary: true });
    const got = await c.next(`echo of message ${i}`);
    if (typeof m === 'string') expectText(got, m, `message ${i}`);
    else expectBinary(got, m, `message ${i}`);
    const n = typeof m === 'string' ? Buffer.byteLength(m) : m.length;
    count(n, n);
  }
}

const compressCases = [
  ['200 game-state messages (~400 B JSON) echoed', (c) => measured('game state', c, async (count) => {
    const msgs = Array.from({ length: 200 }, (_, i) => gameState(i));
    await echoAll(c, msgs, count);
    return `${msgs.length} messages of ~${Buffer.byteLength(msgs[0])} B`;
  })],
  ['4 x 64 KiB JSON echoed', (c) => measured('64 KiB JSON', c, async (count) => {
    const msgs = [1, 2, 3, 4].map((k) => bigJSON(64 << 10, k * 1000));
    await echoAll(c, msgs, count);
    return `${msgs.length} messages of ${msgs[0].length} B`;
  })],
  ['2 x 1 MiB JSON echoed', (c) => measured('1 MiB JSON', c, async (count) => {
    const msgs = [1, 2].map((k) => bigJSON(MiB, k * 100000));
    await echoAll(c, msgs, count);
    return `${msgs.length} messages of ${msgs[0].length} B`;
  })],
  ['mixed: game state, 100 B text, 64 KiB JSON, random binary, 1 MiB JSON', (c) => measured('mixed', c, async (count) => {
    const msgs = [];
    for (let i = 0; i < 40; i++) {
      msgs.push(gameState(1000 + i));
      if (i % 5 === 0) msgs.push(`chat ${i}: ${'see you at the north gate '.repeat(3)}`.slice(0, 100));
      if (i % 10 === 3) msgs.push(randomBytes(4096));
      if (i % 10 === 7) msgs.push(bigJSON(64 << 10, 5000 + i));
      if (i === 20) msgs.push(bigJSON(MiB, 7000));
    }
    await echoAll(c, msgs, count);
    return `${msgs.length} messages`;
  })],
];

// runCompress runs the compression suite: each case on its own connection.
async function runCompress() {
  report.compression = { offer: null, response: null, params: null, cases: [] };
  await runCase('deflate negotiated', async (c) => {
    const ext = c.response || '';
    report.compression.offer = c.offer;
    report.compression.response = ext;
    const pmd = c.ws._extensions['permessage-deflate'];
    report.compression.params = pmd ? pmd.params : null;
    if (!/permessage-deflate/.test(ext)) throw new Error(`server did not accept permessage-deflate (offer ${JSON.stringify(c.offer)}, Sec-WebSocket-Extensions: ${JSON.stringify(ext)})`);
    return `offered ${JSON.stringify(c.offer)}, accepted ${JSON.stringify(ext)}`;
  });
  for (const [name, fn] of compressCases) await runCase(name, fn);
}

// runBroadcast runs the broadcast suite: clients A and B offer permessage-deflate,
// C does not; messages from A and then from C must reach all three, in order.
async function runBroadcast() {
  report.compression = { offer: null, response: null, params: null, cases: [], clients: [] };
  const clients = [];
  const names = ['A (deflate)', 'B (deflate)', 'C (no compression)'];
  const pay = names.map(() => ({ out: 0, in: 0 }));
  let before = [];
  const step = async (name, fn) => {
    const started = Date.now();
    const entry = { name, pass: false, detail: '', ms: 0 };
    try {
      entry.detail = await fn();
      entry.pass = true;
    } catch (e) {
      entry.detail = e && e.message ? e.message : String(e);
    }
    entry.ms = Date.now() - started;
    report.cases.push(entry);
    return entry.pass;
  };
  const ok = await step('broadcast: 2 deflate clients and 1 without compression connected', async () => {
    for (const deflate of [true, true, false]) clients.push(await connect(deflate));
    report.compression.offer = clients[0].offer;
    report.compression.response = clients[0].response;
    const exts = clients.map((c) => c.response || '');
    if (!/permessage-deflate/.test(exts[0]) || !/permessage-deflate/.test(exts[1])) throw new Error(`deflate not negotiated: ${JSON.stringify(exts)}`);
    if (exts[2] !== '') throw new Error(`the client without compression got ${JSON.stringify(exts[2])}`);
    before = clients.map(socketBytes);
    return `extensions ${JSON.stringify(exts)}`;
  });
  // from sends msgs from clients[i], one at a time, and checks that every client
  // gets each one before the next goes out.
  const from = async (i, msgs) => {
    for (let k = 0; k < msgs.length; k++) {
      const m = msgs[k];
      clients[i].ws.send(m);
      const n = Buffer.byteLength(m);
      pay[i].out += n;
      for (let j = 0; j < clients.length; j++) {
        expectText(await clients[j].next(`message ${k} at client ${names[j]}`), m, `message ${k} at client ${names[j]}`);
        pay[j].in += n;
      }
    }
    return `${msgs.length} messages reached all ${clients.length} clients in order`;
  };
  if (ok) {
    await step('broadcast: 100 game-state messages and 64 KiB JSON from a deflate client reach all three', () =>
      from(0, [...Array.from({ length: 100 }, (_, k) => gameState(k)), bigJSON(64 << 10, 42)]));
    await step('broadcast: 50 game-state messages from the client without compression reach all three', () =>
      from(2, Array.from({ length: 50 }, (_, k) => gameState(500 + k))));
    await step('broadcast: 50 more from the second deflate client reach all three', () =>
      from(1, Array.from({ length: 50 }, (_, k) => gameState(900 + k))));
    clients.forEach((c, i) => {
      const b = socketBytes(c);
      report.compression.clients.push({ name: names[i], extensions: c.response || '', payloadOut: pay[i].out, payloadIn: pay[i].in, wireOut: b.written - before[i].written, wireIn: b.read - before[i].read });
    });
  }
  for (const c of clients) await closeQuietly(c);
}

async function main() {
  if (opts.suite === 'compress') {
    await runCompress();
    finish();
    return;
  }
  if (opts.suite === 'broadcast') {
    await runBroadcast();
    finish();
    return;
  }
  if (opts.deflate) {
    await runCase('deflate negotiated', async (c) => {
      const ext = c.ws.extensions || '';
      const ok = /permessage-deflate/.test(ext);
      if (!ok && opts.requireDeflate) {
        throw new Error(`server did not accept permessage-deflate (Sec-WebSocket-Extensions: ${JSON.stringify(ext)})`);
      }
      return ok ? `negotiated: ${ext}` : `not negotiated (allowed without --require-deflate)`;
    });
  }
  for (const [name, fn] of cases) await runCase(name, fn);
  finish();
}

main().catch((e) => finish(`runner crashed: ${e && e.stack ? e.stack : e}`));
