'use strict';
// What the JS peer servers (bun/server.js, uws/server.js) share: limits and
// the command line (--addr HOST:PORT, --admin HOST:PORT, --mode).

const MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
const TOPIC = 'all';

function parseArgs(argv) {
  const opts = { addr: '127.0.0.1:8080', admin: '', mode: 'echo' };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?(addr|admin|mode)(?:=(.*))?$/.exec(argv[i]);
    if (!m) fail(`unknown argument ${argv[i]}`);
    opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
    if (opts[m[1]] === undefined) fail(`missing value for --${m[1]}`);
  }
  if (!['echo', 'broadcast', 'sink'].includes(opts.mode)) {
    fail(`unknown --mode ${JSON.stringify(opts.mode)}: want echo, broadcast or sink`);
  }
  return opts;
}

function splitHostPort(addr) {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port)) fail(`bad address ${JSON.stringify(addr)}: want HOST:PORT`);
  return [addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port];
}

function fail(msg) {
  console.error(msg);
  process.exit(2);
}

module.exports = { MAX_MESSAGE_SIZE, TOPIC, parseArgs, splitHostPort, fail };
