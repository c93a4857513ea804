#!/usr/bin/env node
// chromium-client.mjs — interoperability suite for a megaws echo server, run by the
// browser's own WebSocket: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, which never downloads a browser of its own.
//
// Usage:
//   node chromium-client.mjs URL [--suite echo|compress] [--insecure] [--timeout SECONDS]
//                                [--chromium PATH]
//
//   URL            ws:// or wss:// URL of an echo server
//   --suite S      echo (default): the cases below; compress: with the browser's own
//                  permessage-deflate offer, game-state JSON (~400 B), 64 KiB and 1 MiB
//                  JSON and a mixed sequence echoed, one connection per case in order,
//                  the payload bytes of each case in "compression" (a proxy in front of
//                  the server can count the bytes on the wire per connection)
//   --insecure     accept any TLS certificate (self-signed wss:// in tests):
//                  Chromium runs with --ignore-certificate-errors
//   --timeout S    hard limit for the whole run, browser start included (default 60)
//   --chromium P   browser binary (default $CHROMIUM_PATH or /usr/bin/chromium)
//
// Inside a blank page served from 127.0.0.1 (see serveBlankPage), `new WebSocket(URL)` runs: text echo, ArrayBuffer echo,
// a 1 MiB binary echo compared byte-for-byte in the page, 50 pipelined messages in
// order, and close(4001, "done") expecting the server to echo code 4001. The
// negotiated ws.extensions is reported (Chromium always offers permessage-deflate).
// Prints exactly one JSON object on stdout and exits 0 only if every case passed.

import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const playwrightVersion = require('playwright-core/package.json').version;

function usage(msg) {
  if (msg) process.stderr.write(`chromium-client: ${msg}\n`);
  process.stderr.write('usage: node chromium-client.mjs URL [--suite echo|compress] [--insecure] [--timeout S] [--chromium PATH]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: '', suite: 'echo', insecure: false, timeout: 60, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--suite': opts.suite = value(); break;
      case '--insecure': opts.insecure = true; break;
      case '--timeout': opts.timeout = Number(value()); break;
      case '--chromium': opts.chromium = value(); break;
      case '-h': case '--help': usage(); break;
      default:
        if (a.startsWith('-')) usage(`unknown option ${a}`);
        if (opts.url) usage(`unexpected argument ${a}`);
        opts.url = a;
    }
  }
  if (!/^wss?:\/\//.test(opts.url)) usage('URL must start with ws:// or wss://');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number');
  if (!['echo', 'compress'].includes(opts.suite)) usage(`unknown --suite ${opts.suite}`);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const report = {
  client: 'chromium',
  playwrightCore: playwrightVersion,
  browserVersion: null,
  url: opts.url,
  suite: opts.suite,
  extensions: null,
  // --suite compress: the payload bytes each case sent and received, in case order.
  compression: null,
  cases: [],
  passed: 0,
  failed: 0,
  ok: false,
};

let printed = false;
function finish(error) {
  if (printed) return;
  printed = true;
  if (error) report.error = error;
  report.passed = report.cases.filter((c) => c.pass).length;
  report.failed = report.cases.length - report.passed;
  report.ok = !error && report.failed === 0 && report.cases.length > 0;
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exitCode = report.ok ? 0 : 1;
}

// The suite that runs inside the page. It must be self-contained: playwright
// serialises the function source into the browser.
async function pageSuite({ url, caseTimeoutMs, suite }) {
  const results = { extensions: null, cases: [], compression: null };

  function open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const inbox = [];
      const waiters = [];
      const st = { ws, inbox, closed: null, errored: false };
      const wake = () => { while (waiters.length) waiters.shift()(); };
      ws.onmessage = (ev) => { inbox.push(ev.data); wake(); };
      ws.onerror = () => { st.errored = true; wake(); };
      ws.onclose = (ev) => {
        st.closed = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
        wake();
        reject(new Error(`connection closed before open (code ${ev.code})`));
      };
      ws.onopen = () => resolve(st);
      st.waitFor = (what, pred, ms = caseTimeoutMs) => new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        const check = () => {
          const v = pred();
          if (v) { clearTimeout(timer); res(v); return; }
          if (st.closed) {
            clearTimeout(timer);
            rej(new Error(`connection closed (code ${st.closed.code}, reason ${JSON.stringify(st.closed.reason)}) while waiting for ${what}`));
            return;
          }
          waiters.push(check);
        };
        check();
      });
      st.next = (what) => st.waitFor(what, () => (inbox.length ? { data: inbox.shift() } : null)).then((m) => m.data);
      setTimeout(() => reject(new Error(`open timed out after ${caseTimeoutMs} ms`)), caseTimeoutMs);
    });
  }

  const isText = (d) => typeof d === 'string';
  function sameBytes(got, want) {
    if (!(got instanceof ArrayBuffer)) throw new Error(`got ${typeof got} message, want binary ArrayBuffer`);
    const a = new Uint8Array(got);
    if (a.length !== want.length) throw new Error(`got ${a.length} bytes, want ${want.length}`);
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== want[i]) throw new Error(`bytes differ at offset ${i}: got ${a[i]}, want ${want[i]}`);
    }
  }
  function randomBytes(n) {
    const b = new Uint8Array(n);
    for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
    return b;
  }

  const cases = [
    ['text echo', async (c) => {
      const s = 'hello from chromium ✓ 🚀';
      c.ws.send(s);
      const got = await c.next('text echo');
      if (!isText(got)) throw new Error('got a binary message, want text');
      if (got !== s) throw new Error(`got ${JSON.stringify(got)}, want ${JSON.stringify(s)}`);
      return `got ${JSON.stringify(got)}`;
    }],
    ['binary ArrayBuffer echo', async (c) => {
      const b = randomBytes(2048);
      c.ws.send(b.buffer);
      sameBytes(await c.next('binary echo'), b);
      return `${b.length} bytes round-tripped`;
    }],
    ['1 MiB binary echo', async (c) => {
      const b = randomBytes(1 << 20);
      c.ws.send(b);
      sameBytes(await c.next('1 MiB binary echo'), b);
      return `${b.length} bytes identical`;
    }],
    ['50 pipelined messages echoed in order', async (c) => {
      const n = 50;
      for (let i = 0; i < n; i++) c.ws.send(`pipelined-${i}`);
      for (let i = 0; i < n; i++) {
        const got = await c.next(`pipelined message ${i}`);
        if (got !== `pipelined-${i}`) throw new Error(`message ${i}: got ${JSON.stringify(isText(got) ? got : '[binary]')}, want "pipelined-${i}"`);
      }
      return `${n} messages in order`;
    }],
    ['close 4001 "done" is echoed', async (c) => {
      c.ws.close(4001, 'done');
      const closed = await c.waitFor('the server close frame', () => c.closed);
      if (closed.code !== 4001) {
        throw new Error(`close event code ${closed.code} reason ${JSON.stringify(closed.reason)} wasClean ${closed.wasClean}, want code 4001 (1005 = no status in the server's close, 1006 = closed without a close frame)`);
      }
      return `server closed with ${closed.code} ${JSON.stringify(closed.reason)}, wasClean ${closed.wasClean}`;
    }],
  ];

  // The compression suite: messages as a game sends them, and large JSON.
  const gameState = (tick) => {
    const players = [];
    for (let i = 0; i < 7; i++) {
      players.push({ id: i, x: 100 + i * 7 + (tick % 5), y: 200 + i * 3 - (tick % 3), hp: 100 - ((tick + i) % 9), name: `player-${i}` });
    }
    return JSON.stringify({ t: 'state', tick, players });
  };
  const bigJSON = (n, seed) => {
    let s = '[';
    for (let t = seed; s.length < n - 500; t++) s += (s.length > 1 ? ',' : '') + gameState(t);
    return (s + ']').padEnd(n, ' ');
  };
  const byteLen = (m) => (typeof m === 'string' ? new TextEncoder().encode(m).length : m.length);
  // echoAll sends each message, one at a time, checks its echo and records the
  // payload bytes of the case.
  const echoAll = async (c, name, msgs) => {
    let bytes = 0;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      c.ws.send(m);
      const got = await c.next(`echo of message ${i}`);
      if (typeof m === 'string') {
        if (got !== m) throw new Error(`message ${i}: echo differs (${isText(got) ? got.length + ' chars' : 'binary'}, want ${m.length} chars)`);
      } else {
        sameBytes(got, m);
      }
      bytes += byteLen(m);
    }
    results.compression.cases.push({ name, payloadOut: bytes, payloadIn: bytes });
    return `${msgs.length} messages, ${bytes} B each way`;
  };
  const compressCases = [
    ['200 game-state messages (~400 B JSON) echoed', (c) => echoAll(c, 'game state', Array.from({ length: 200 }, (_, i) => gameState(i)))],
    ['4 x 64 KiB JSON echoed', (c) => echoAll(c, '64 KiB JSON', [1, 2, 3, 4].map((k) => bigJSON(64 << 10, k * 1000)))],
    ['2 x 1 MiB JSON echoed', (c) => echoAll(c, '1 MiB JSON', [1, 2].map((k) => bigJSON(1 << 20, k * 100000)))],
    ['mixed: game state, 100 B text, 64 KiB JSON, random binary, 1 MiB JSON', (c) => {
      const msgs = [];
      for (let i = 0; i < 40; i++) {
        msgs.push(gameState(1000 + i));
        if (i % 5 === 0) msgs.push(`chat ${i}: ${'see you at the north gate '.repeat(3)}`.slice(0, 100));
        if (i % 10 === 3) msgs.push(randomBytes(4096));
        if (i % 10 === 7) msgs.push(bigJSON(64 << 10, 5000 + i));
        if (i === 20) msgs.push(bigJSON(1 << 20, 7000));
      }
      return echoAll(c, 'mixed', msgs);
    }],
  ];
  if (suite === 'compress') results.compression = { cases: [] };

  for (const [name, fn] of suite === 'compress' ? compressCases : cases) {
    const started = performance.now();
    const entry = { name, pass: false, detail: '', ms: 0 };
    let c = null;
    try {
      c = await open();
      if (results.extensions === null) results.extensions = c.ws.extensions;
      entry.detail = await fn(c);
      entry.pass = true;
    } catch (e) {
      entry.detail = e && e.message ? e.message : String(e);
    } finally {
      if (c && !c.closed) {
        try {
          c.ws.close(1000, 'case done');
          await c.waitFor('close', () => c.closed, 2000);
        } catch { /* the next case gets a fresh connection anyway */ }
      }
      entry.ms = Math.round(performance.now() - started);
      results.cases.push(entry);
      // Hand each result out as it completes, so a run cut short still reports it.
      if (typeof window.megawsReportCase === 'function') await window.megawsReportCase(entry);
    }
  }
  return results;
}

// serveBlankPage serves an empty HTML page on 127.0.0.1:<random port> for the suite
// to run in. It answers every path with the same page and keeps no connection alive.
function serveBlankPage() {
  return new Promise((resolve, reject) => {
    const srv = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', connection: 'close' });
      res.end('<!doctype html><meta charset="utf-8"><title>megaws interop</title>');
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      resolve({
        url: `http://127.0.0.1:${port}/`,
        close: () => { srv.closeAllConnections(); srv.close(); },
      });
    });
  });
}

async function main() {
  if (!existsSync(opts.chromium)) {
    throw new Error(`${opts.chromium} not found (install Debian's chromium: run scripts/setup.sh)`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  if (opts.insecure) args.push('--ignore-certificate-errors');
  let browser = null;
  let pageServer = null;
  const hardStop = setTimeout(async () => {
    finish(`run exceeded ${opts.timeout}s`);
    try { if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 3000))]); } catch { /* leaving anyway */ }
    process.exit(1);
  }, opts.timeout * 1000);
  try {
    // chromium.launch gives the browser a fresh temporary profile and removes it on close.
    browser = await chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      args,
      timeout: Math.min(30, opts.timeout) * 1000,
    });
    report.browserVersion = browser.version();
    const context = await browser.newContext({ ignoreHTTPSErrors: opts.insecure });
    const page = await context.newPage();
    page.on('console', (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
    // Chromium's Local Network Access checks block a WebSocket to 127.0.0.1 from
    // about:blank (an opaque, "public" origin): net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS.
    // A page served from loopback may talk to loopback, as an app on the same host
    // would, so serve one blank page from 127.0.0.1 instead of disabling the check.
    await page.exposeFunction('megawsReportCase', (entry) => { report.cases.push(entry); });
    pageServer = await serveBlankPage();
    await page.goto(pageServer.url);
    const caseTimeoutMs = Math.max(3000, Math.min(15000, (opts.timeout * 1000) / 7));
    const results = await page.evaluate(pageSuite, { url: opts.url, caseTimeoutMs, suite: opts.suite });
    report.extensions = results.extensions;
    report.compression = results.compression;
    if (report.cases.length !== results.cases.length) report.cases = results.cases;
    finish();
  } finally {
    clearTimeout(hardStop);
    if (browser) await browser.close().catch(() => {});
    if (pageServer) pageServer.close();
  }
}

main().catch((e) => finish(`runner failed: ${e && e.message ? e.message : e}`));
