#!/usr/bin/env node
// cluster-e2e.mjs — browser test of the demo board across two megaws nodes of
// a cluster (scripts/cluster.sh: `megaws serve --broker URL --mode demo` nodes
// behind nginx). Headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) opens page A at URL_A and page B at URL_B — nginx ports
// pinned to two different nodes, so each page's WebSocket lives on its own
// node — paints in each and checks that the other page sees the strokes,
// which travel from one node to the other through the broker. It saves a
// screenshot of page B.
//
// Usage:
//   node cluster-e2e.mjs URL_A URL_B OUTPNG [--timeout SECONDS] [--chromium PATH]
//
//   URL_A, URL_B   http:// URLs of the demo page on two different nodes
//   OUTPNG         where to write the screenshot
//   --timeout S    hard limit for the whole run, browser start included (default 60)
//   --chromium P   browser binary (default $CHROMIUM_PATH or /usr/bin/chromium)
//
// What it does not check, because the demo keeps its board per node (see the
// cluster report): a page joining later gets only its own node's board, an
// erase of a cell painted through another node is ignored by the eraser's
// node, and the stats panel shows whichever node published last.
//
// Prints exactly one JSON object on stdout (the report format of
// chromium-client.mjs) and exits 0 only if every case passed.

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

function usage(msg) {
  if (msg) process.stderr.write(`cluster-e2e: ${msg}\n`);
  process.stderr.write('usage: node cluster-e2e.mjs URL_A URL_B OUTPNG [--timeout S] [--chromium PATH]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { urlA: '', urlB: '', out: '', timeout: 60, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };
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
  if (pos.length !== 3) usage('want URL_A, URL_B and OUTPNG');
  [opts.urlA, opts.urlB, opts.out] = pos;
  for (const u of [opts.urlA, opts.urlB]) if (!/^https?:\/\//.test(u)) usage('URLs must start with http:// or https://');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const report = { client: 'cluster-e2e', browserVersion: null, url: `${opts.urlA} ${opts.urlB}`, screenshot: null, cases: [], passed: 0, failed: 0, ok: false };

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
async function openBoard(browser, url, label) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 640 } });
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[${label} ${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[${label} error] ${e.message}\n`));
  const resp = await page.goto(url, { timeout: waitMs });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${url}: status ${resp && resp.status()}`);
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
    await step('page A and page B open the board on their nodes', async () => {
      a = await openBoard(browser, opts.urlA, 'page A');
      b = await openBoard(browser, opts.urlB, 'page B');
      // Each node numbers its players, so both may get the same color: the
      // checks below look at cells only the other page painted.
      return `page A color ${a.color} via ${opts.urlA}, page B color ${b.color} via ${opts.urlB}`;
    });

    const w = await a.page.evaluate(() => width);
    const cellA = 4 * w + 6;
    const cellB = 13 * w + 21;
    await step('a click on page A appears on page B (node to node)', async () => {
      await a.page.click(cellSel(cellA));
      await waitCell(a.page, cellA, a.color, 'page A (its own stroke, from its node\'s room)');
      await waitCell(b.page, cellA, a.color, 'page B');
      return `cell ${cellA} is color ${a.color} on both pages`;
    });
    await step('a click on page B appears on page A (and back)', async () => {
      await b.page.click(cellSel(cellB));
      await waitCell(b.page, cellB, b.color, 'page B (its own stroke)');
      await waitCell(a.page, cellB, b.color, 'page A');
      return `cell ${cellB} is color ${b.color} on both pages`;
    });
    await step('a drag on page A paints a stroke seen by page B', async () => {
      const row = 9;
      const first = await a.page.$(cellSel(row * w + 3));
      const last = await a.page.$(cellSel(row * w + 16));
      const r0 = await first.boundingBox();
      const r1 = await last.boundingBox();
      await a.page.mouse.move(r0.x + r0.width / 2, r0.y + r0.height / 2);
      await a.page.mouse.down();
      await a.page.mouse.move(r1.x + r1.width / 2, r1.y + r1.height / 2, { steps: 28 });
      await a.page.mouse.up();
      for (let x = 3; x <= 16; x++) await waitCell(b.page, row * w + x, a.color, `page B, stroke cell ${x}`);
      return `14 cells of row ${row}`;
    });
    await step('page B paints a shape seen by page A', async () => {
      const shape = [];
      for (let y = 2; y <= 6; y++) for (let x = 24; x <= 28; x++) if (y === 2 || y === 6 || x === 24 || x === 28) shape.push(y * w + x);
      for (const i of shape) await b.page.click(cellSel(i));
      for (const i of shape) await waitCell(a.page, i, b.color, 'page A');
      return `${shape.length} cells`;
    });
    await step('page A erases its own cell on both pages', async () => {
      await a.page.click(cellSel(cellA), { button: 'right' });
      await waitCell(a.page, cellA, 0, 'page A');
      await waitCell(b.page, cellA, 0, 'page B');
      await a.page.click(cellSel(cellA));
      await waitCell(b.page, cellA, a.color, 'page B (repainted)');
      return `cell ${cellA} erased and repainted by A, seen by B`;
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
