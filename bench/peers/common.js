'use strict';
// What the JS peer servers (bun/server.js, uws/server.js) share: limits and
// the command line (--addr HOST:PORT, --admin HOST:PORT, --mode, and
// --compression off|0|8..15, whose default is $MEGAWS_PEER_COMPRESSION or
// off: 0 is permessage-deflate without context takeover, 8 to 15 context
// takeover with that window).

const MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
const TOPIC = 'all';

function parseArgs(argv) {
  const opts = { addr: '127.0.0.1:8080', admin: '', mode: 'echo', compression: process.env.MEGAWS_PEER_COMPRESSION || 'off' };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?(addr|admin|mode|compression)(?:=(.*))?$/.exec(argv[i]);
    if (!m) fail(`unknown argument ${argv[i]}`);
    opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
    if (opts[m[1]] === undefined) fail(`missing value for --${m[1]}`);
  }
  if (!['echo', 'broadcast', 'sink'].includes(opts.mode)) {
    fail(`unknown --mode ${JSON.stringify(opts.mode)}: want echo, broadcast or sink`);
  }
  if (opts.compression === 'off') {
    opts.compression = -1;
  } else {
    const bits = Number(opts.compression);
    if (!Number.isInteger(bits) || (bits !== 0 && (bits < 8 || bits > 15))) {
      fail(`bad --compression ${JSON.stringify(opts.compression)}: want off, 0 or 8 to 15`);
    }
    opts.compression = bits;
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
