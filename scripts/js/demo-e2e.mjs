#!/usr/bin/env node
// demo-e2e.mjs — browser test of `megaws serve --mode demo`: headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core, which never downloads
// a browser) opens the shared board in two tabs, paints in each and checks that
// the other tab sees the stroke, that a third tab joining later gets the
// current board from the server, and that the stats panel counts the tabs.
// It saves a screenshot of a tab.
//
// Usage:
//   node demo-e2e.mjs URL OUTPNG [--timeout SECONDS] [--chromium PATH]
//
//   URL            http:// URL of the demo page (megaws serve --mode demo)
//   OUTPNG         where to write the screenshot
//   --timeout S    hard limit for the whole run, browser start included (default 60)
//   --chromium P   browser binary (default $CHROMIUM_PATH or /usr/bin/chromium)
//
// Prints exactly one JSON object on stdout (the report format of
// chromium-client.mjs) and exits 0 only if every case passed.

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

function usage(msg) {
  if (msg) process.stderr.write(`demo-e2e: ${msg}\n`);
  process.stderr.write('usage: node demo-e2e.mjs URL OUTPNG [--timeout S] [--chromium PATH]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: '', out: '', timeout: 60, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--timeout': opts.timeout = Number(value()); break;
      case '--chromium': opts.chromium = value(); break;
      case '-h': case '--help': usage(); break;
      default:
        if (a.startsWith('-')) usage(`unknown option ${a}`);
        pos.push(a);
    }
  }
  if (pos.length !== 2) usage('want URL and OUTPNG');
  [opts.url, opts.out] = pos;
  if (!/^https?:\/\//.test(opts.url)) usage('URL must start with http:// or https://');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const report = { client: 'demo-e2e', browserVersion: null, url: opts.url, screenshot: null, cases: [], passed: 0, failed: 0, ok: false };

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

// step runs one case and records it; a failed case stops the run, since the
// later ones build on it.
async function step(name, fn) {
  const started = Date.now();
  const entry = { name, pass: false, detail: '', ms: 0 };
  report.cases.push(entry);
  try {
    entry.detail = (await fn()) || '';
    entry.pass = true;
  } catch (e) {
    entry.detail = e && e.message ? e.message.split('\n')[0] : String(e);
    throw e;
  } finally {
    entry.ms = Date.now() - started;
  }
}

const waitMs = 30_000;
const cellSel = (i) => `#board .cell[data-i="${i}"]`;

// openBoard opens the demo in a new window and waits for the server's hello
// (the board is built) and the open socket. Each player gets a window (a
// browser context) of its own: Chromium throttles the tabs of a window behind
// its front tab, and players are separate people anyway.
async function openBoard(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 640 } });
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[${label} ${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[${label} error] ${e.message}\n`));
  const resp = await page.goto(opts.url, { timeout: waitMs });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${opts.url}: status ${resp && resp.status()}`);
  await page.waitForSelector('#status.up', { timeout: waitMs });
  await page.waitForSelector(cellSel(0), { timeout: waitMs });
  const color = await page.evaluate(() => me && me.color);
  if (!(color > 0)) throw new Error(`${label}: no color assigned by the server's hello`);
  return { page, color };
}

const cellColor = (page, i) => page.$eval(cellSel(i), (el) => Number(el.dataset.c));

async function waitCell(page, i, want, label) {
  try {
    await page.waitForFunction(([sel, c]) => {
      const el = document.querySelector(sel);
      return el && Number(el.dataset.c) === c;
    }, [cellSel(i), want], { timeout: waitMs });
  } catch {
    throw new Error(`${label}: cell ${i} has color ${await cellColor(page, i)}, want ${want} after ${waitMs} ms`);
  }
}

async function main() {
  if (!existsSync(opts.chromium)) throw new Error(`${opts.chromium} not found (install Debian's chromium: run scripts/setup.sh)`);
  let browser = null;
  const hardStop = setTimeout(async () => {
    finish(`run exceeded ${opts.timeout}s`);
    try { if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 3000))]); } catch { /* leaving anyway */ }
    process.exit(1);
  }, opts.timeout * 1000);
  try {
    browser = await chromium.launch({
      executablePath: opts.chromium,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: Math.min(30, opts.timeout) * 1000,
    });
    report.browserVersion = browser.version();

    let a, b;
    await step('two tabs open the board', async () => {
      a = await openBoard(browser, 'tab A');
      b = await openBoard(browser, 'tab B');
      if (a.color === b.color) throw new Error(`both tabs got color ${a.color}`);
      return `colors ${a.color} and ${b.color}`;
    });

    // A click in tab A must reach tab B through the server's room, and back.
    const w = await a.page.evaluate(() => width);
    const cellA = 5 * w + 7;
    const cellB = 12 * w + 20;
    await step('a click in tab A appears in tab B', async () => {
      await a.page.click(cellSel(cellA));
      await waitCell(a.page, cellA, a.color, 'tab A (its own stroke, echoed by the room)');
      await waitCell(b.page, cellA, a.color, 'tab B');
      return `cell ${cellA} is color ${a.color} in both tabs`;
    });
    await step('a click in tab B appears in tab A', async () => {
      await b.page.click(cellSel(cellB));
      await waitCell(a.page, cellB, b.color, 'tab A');
      return `cell ${cellB} is color ${b.color} in both tabs`;
    });
    await step('a right-click erases in both tabs', async () => {
      await b.page.click(cellSel(cellA), { button: 'right' });
      await waitCell(a.page, cellA, 0, 'tab A');
      await waitCell(b.page, cellA, 0, 'tab B');
      await a.page.click(cellSel(cellA));
      await waitCell(b.page, cellA, a.color, 'tab B (repainted)');
      return `cell ${cellA} erased by B, repainted by A`;
    });

    // Strokes from both tabs (a drag in A), so the screenshot shows a shared board.
    await step('a drag in tab A paints a stroke seen by tab B', async () => {
      const row = 8;
      const first = await a.page.$(cellSel(row * w + 3));
      const last = await a.page.$(cellSel(row * w + 14));
      const r0 = await first.boundingBox();
      const r1 = await last.boundingBox();
      await a.page.mouse.move(r0.x + r0.width / 2, r0.y + r0.height / 2);
      await a.page.mouse.down();
      await a.page.mouse.move(r1.x + r1.width / 2, r1.y + r1.height / 2, { steps: 24 });
      await a.page.mouse.up();
      for (let x = 3; x <= 14; x++) await waitCell(b.page, row * w + x, a.color, `tab B, stroke cell ${x}`);
      return `12 cells of row ${row}`;
    });
    await step('tab B paints a shape seen by tab A', async () => {
      const shape = [];
      for (let y = 3; y <= 7; y++) for (let x = 22; x <= 26; x++) if (y === 3 || y === 7 || x === 22 || x === 26) shape.push(y * w + x);
      for (const i of shape) await b.page.click(cellSel(i));
      for (const i of shape) await waitCell(a.page, i, b.color, 'tab A');
      return `${shape.length} cells`;
    });

    await step('a tab opened later gets the current board from the server', async () => {
      const c = await openBoard(browser, 'tab C');
      for (const [i, want] of [[cellA, a.color], [cellB, b.color]]) {
        const got = await cellColor(c.page, i);
        if (got !== want) throw new Error(`tab C: cell ${i} is ${got}, want ${want}`);
      }
      await c.page.context().close();
      return 'cells painted before it joined are there';
    });

    await step('the stats panel counts the open tabs', async () => {
      try {
        await a.page.waitForFunction(() => {
          const v = Number(document.querySelector('[data-stat="conns"]').textContent);
          return v >= 2 && Number(document.querySelector('[data-stat="loops"]').textContent) >= 1;
        }, null, { timeout: waitMs });
      } catch {
        const got = await a.page.$eval('[data-stat="conns"]', (el) => el.textContent);
        throw new Error(`connections shows ${JSON.stringify(got)}, want >= 2`);
      }
      // Wait for a sample with traffic in it, so the chart is not empty.
      await a.page.waitForFunction(() => rates.length >= 2, null, { timeout: waitMs });
      const got = await a.page.$eval('#stats', (el) => el.innerText.replace(/\s+/g, ' '));
      return got;
    });

    await step('screenshot', async () => {
      await b.page.mouse.move(0, 0);
      await b.page.screenshot({ path: opts.out, fullPage: true });
      report.screenshot = opts.out;
      return opts.out;
    });
    finish();
  } finally {
    clearTimeout(hardStop);
    if (browser) await browser.close().catch(() => {});
  }
}

main().catch((e) => finish(`runner failed: ${e && e.message ? e.message.split('\n')[0] : e}`));
