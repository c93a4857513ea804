#!/usr/bin/env node
// node-client.mjs — interoperability suite for a megaws echo server, run with the
// npm `ws` client (the WebSocket implementation most Node services use).
//
// Usage:
//   node node-client.mjs URL [--deflate] [--require-deflate] [--ca FILE]
//                            [--timeout SECONDS] [--case-timeout SECONDS]
//
//   URL                ws://host:port/path or wss://host:port/path of an echo server
//   --deflate          offer permessage-deflate (RFC 7692); report whether the server
//                      accepted it and run the echo cases over the negotiated extension
//   --require-deflate  fail (case "deflate negotiated") if the server did not accept it
//   --ca FILE          PEM certificate(s) to trust for wss:// (e.g. a self-signed cert)
//   --timeout S        hard limit for the whole run (default 60)
//   --case-timeout S   limit for one case (default 15)
//
// Prints exactly one JSON object on stdout:
//   {"client":"node-ws", "url":..., "deflate":{...}, "cases":[{"name","pass","detail","ms"}],
//    "passed":N, "failed":N, "ok":bool}
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
  process.stderr.write('usage: node node-client.mjs URL [--deflate] [--require-deflate] [--ca FILE] [--timeout S] [--case-timeout S]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: '', deflate: false, requireDeflate: false, ca: null, timeout: 60, caseTimeout: 15 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
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
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const caPEM = opts.ca ? readFileSync(opts.ca) : null;

const report = {
  client: 'node-ws',
  wsVersion,
  node: process.version,
  url: opts.url,
  deflate: { requested: opts.deflate, required: opts.requireDeflate, negotiated: null, extensions: null },
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
// messages in order without racing the event emitter.
function connect() {
  return new Promise((resolve, reject) => {
    const clientOpts = {
      // ws offers permessage-deflate by default; state it either way. threshold 0 makes
      // even "hello" go through the compressor, so the server's inflater sees every case.
      perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
      handshakeTimeout: opts.caseTimeout * 1000,
      maxPayload: 64 << 20,
    };
    if (caPEM) clientOpts.ca = caPEM;
    const ws = new WebSocket(opts.url, clientOpts);
    ws.binaryType = 'nodebuffer';
    const inbox = [];
    const waiters = [];
    const state = { ws, inbox, closed: null, pongs: [], error: null };
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

async function main() {
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
