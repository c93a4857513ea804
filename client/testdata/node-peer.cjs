// A WebSocket server that is not megaws, for package client's tests: the npm
// `ws` library under Node. Run with NODE_PATH=scripts/js/node_modules. It
// prints {"port": N} once listening, then one JSON line per closed
// connection, and exits when stdin closes. The request path picks the
// behaviour:
//   /echo       echoes every message (text stays text)
//   /fragments  sends "frag"+"ment"+"ed" and a 140000-byte binary message in
//               fragments, then echoes
//   /ping       pings with "hello"; the pong it gets back is reported as the
//               text message "pong:<payload>"
//   /close      closes with 4002 "node bye"
//   /headers    sends what it saw: origin, x-token, protocol, extensions
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: { threshold: 0 },
  maxPayload: 64 << 20,
  handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
});

wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));

wss.on('connection', (ws, req) => {
  const path = req.url;
  ws.on('close', (code, reason) => console.log(JSON.stringify({ event: 'close', path, code, reason: reason.toString() })));
  ws.on('pong', (data) => ws.send('pong:' + data.toString()));
  const echo = () => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  switch (path) {
    case '/fragments':
      ws.send('frag', { fin: false });
      ws.send('ment', { fin: false });
      ws.send('ed', { fin: true });
      ws.send(Buffer.alloc(70000, 1), { binary: true, fin: false });
      ws.send(Buffer.alloc(70000, 2), { binary: true, fin: true });
      echo();
      break;
    case '/ping':
      ws.ping('hello');
      echo();
      break;
    case '/close':
      ws.close(4002, 'node bye');
      break;
    case '/headers':
      ws.send(JSON.stringify({
        origin: req.headers.origin || '',
        token: req.headers['x-token'] || '',
        protocol: ws.protocol,
        extensions: req.headers['sec-websocket-extensions'] || '',
        negotiated: ws.extensions,
      }));
      echo();
      break;
    default:
      echo();
  }
});

process.stdin.on('end', () => wss.close(() => process.exit(0)));
process.stdin.resume();
