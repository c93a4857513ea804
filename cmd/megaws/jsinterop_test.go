package main_test

// Real clients against `megaws serve`: the npm `ws` client under Node, and headless
// Chromium's own WebSocket (Debian's chromium driven by playwright-core). The client
// suites live in scripts/js; each prints a JSON report that these tests judge case by
// case. Install the tools with scripts/setup.sh.

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

const jsTimeout = 90 * time.Second // the scripts stop themselves at 60 s

// nodeCases are the cases node-client.mjs must run; a renamed or dropped case fails.
var nodeCases = []string{
	`text echo "hello"`,
	"text echo multi-byte UTF-8",
	"binary echo random bytes",
	"1 MiB text echo",
	"1 MiB binary echo",
	"fragmented text message",
	"ping with payload gets pong with same payload",
	"100 pipelined messages echoed in order",
	`close 4000 "bye" is echoed`,
}

var chromiumCases = []string{
	"text echo",
	"binary ArrayBuffer echo",
	"1 MiB binary echo",
	"50 pipelined messages echoed in order",
	`close 4001 "done" is echoed`,
}

func TestNodeWSClient(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	addr := startMegaws(t)
	rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, nodeCases...)
	if rep.Deflate != nil && rep.Deflate.Negotiated != nil && *rep.Deflate.Negotiated {
		t.Errorf("server negotiated permessage-deflate although the client did not offer it: %q", deref(rep.Deflate.Extensions))
	}
}

func TestNodeWSClientDeflate(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	addr := startMegaws(t, "--compression")
	rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+addr+"/", "--deflate", "--require-deflate", "--timeout", "60")
	requireAllPass(t, rep, append([]string{"deflate negotiated"}, nodeCases...)...)
	if rep.Deflate == nil || rep.Deflate.Negotiated == nil || !*rep.Deflate.Negotiated {
		t.Errorf("permessage-deflate was not negotiated with --compression")
	} else {
		t.Logf("negotiated extensions: %s", deref(rep.Deflate.Extensions))
	}
}

func TestChromiumClient(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	addr := startMegaws(t)
	rep := runJS(t, jsTimeout, "chromium-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, chromiumCases...)
	// Chromium always offers permessage-deflate; without --compression megaws must
	// decline it (an empty Sec-WebSocket-Extensions).
	t.Logf("chromium %s, negotiated extensions %q", rep.BrowserVersion, deref(rep.Extensions))
	if ext := deref(rep.Extensions); strings.Contains(ext, "permessage-deflate") {
		t.Errorf("megaws without --compression accepted permessage-deflate from Chromium: %q", ext)
	}
}

// TestChromiumClientDeflate runs the browser suite with compression on: Chromium's
// offer (with client_max_window_bits) must be accepted, and every echo must survive
// the server's inflate of Chromium's frames and Chromium's inflate of the server's.
func TestChromiumClientDeflate(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	addr := startMegaws(t, "--compression")
	rep := runJS(t, jsTimeout, "chromium-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, chromiumCases...)
	t.Logf("chromium %s, negotiated extensions %q", rep.BrowserVersion, deref(rep.Extensions))
	if ext := deref(rep.Extensions); !strings.Contains(ext, "permessage-deflate") {
		t.Errorf("megaws --compression did not accept Chromium's permessage-deflate offer: ws.extensions = %q", ext)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Context takeover with real clients: Node's ws and Chromium offer
// permessage-deflate with client_max_window_bits by default, which megaws
// --compression --compression-window BITS answers with takeover both ways.
// Each client echoes game-state JSON (~400 B), 64 KiB and 1 MiB JSON and a
// mixed sequence, one connection per case, through a proxy that records the
// bytes of every connection. The test decodes that record itself, without
// trusting either end: the server's Sec-WebSocket-Extensions, every frame
// each way, every compressed message inflated with compress/flate, with the
// earlier compressed messages of its direction as the window (only the
// negotiated 2^max_window_bits of them) where the response allows takeover.
// The server must have received compressed (RSV1) messages and sent every
// message of at least its 256-byte threshold compressed; every echo must
// equal what the client sent; under takeover the messages of both
// directions must reach back into earlier ones (they do not inflate on
// their own), and without it none may; and the game ticks must go on the
// wire at under 32% of their size, which only a shared window achieves
// (about 40% with window 0).

// takeoverWindows are the --compression-window values the clients run
// against, with the Sec-WebSocket-Extensions megaws answers their default
// offer with ("permessage-deflate; client_max_window_bits").
var takeoverWindows = []struct{ bits, want string }{
	{bits: "0", want: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{bits: "10", want: "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"},
	{bits: "12", want: "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"},
	{bits: "15", want: "permessage-deflate; client_max_window_bits=15"},
}

// compressCaseNames are the cases of node-client.mjs and chromium-client.mjs
// --suite compress, in the order they run, one connection each.
var compressCaseNames = []string{
	"200 game-state messages (~400 B JSON) echoed",
	"4 x 64 KiB JSON echoed",
	"2 x 1 MiB JSON echoed",
	"mixed: game state, 100 B text, 64 KiB JSON, random binary, 1 MiB JSON",
}

// serveThreshold is megaws serve's default --compression-threshold: the
// server compresses every message of at least this many bytes.
const serveThreshold = 256

// compressionReport is the "compression" object of the JS reports.
type compressionReport struct {
	Compression *jsCompression `json:"compression"`
}

type jsCompression struct {
	Offer    string          `json:"offer"`
	Response string          `json:"response"`
	Params   json.RawMessage `json:"params"`
	Cases    []wireFigures   `json:"cases"`
	Clients  []wireFigures   `json:"clients"`
}

// wireFigures are a case's (or a client's) payload bytes and, as the
// client's socket counted them, bytes on the wire.
type wireFigures struct {
	Name       string `json:"name"`
	Extensions string `json:"extensions"`
	PayloadOut int64  `json:"payloadOut"`
	PayloadIn  int64  `json:"payloadIn"`
	WireOut    int64  `json:"wireOut"`
	WireIn     int64  `json:"wireIn"`
}

func pctOf(a, b int64) float64 { return 100 * float64(a) / float64(max(b, 1)) }

func TestNodeWSClientTakeover(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	for _, w := range takeoverWindows {
		t.Run("window_"+w.bits, func(t *testing.T) {
			px := startRecordingProxy(t, startMegaws(t, "--compression", "--compression-window", w.bits))
			rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+px.addr()+"/", "--suite", "compress", "--timeout", "60")
			requireAllPass(t, rep, append([]string{"deflate negotiated"}, compressCaseNames...)...)
			cr := parseCompression(t, rep)
			if cr.Offer != "permessage-deflate; client_max_window_bits" {
				t.Errorf("ws offered %q, want its default %q", cr.Offer, "permessage-deflate; client_max_window_bits")
			}
			if cr.Response != w.want {
				t.Errorf("negotiated %q (ws's params %s), want %q", cr.Response, cr.Params, w.want)
			}
			for _, c := range cr.Cases {
				t.Logf("ws's socket, %-12s: sent %d B as %d on the wire (%.1f%%), received %d B as %d (%.1f%%)", c.Name, c.PayloadOut, c.WireOut, pctOf(c.WireOut, c.PayloadOut), c.PayloadIn, c.WireIn, pctOf(c.WireIn, c.PayloadIn))
			}
			// Connection 0 is the "deflate negotiated" case.
			checkWire(t, w.bits, w.want, cr.Cases, px.decode(t), 1)
		})
	}
}

func TestChromiumClientTakeover(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	for _, w := range takeoverWindows[1:] {
		t.Run("window_"+w.bits, func(t *testing.T) {
			px := startRecordingProxy(t, startMegaws(t, "--compression", "--compression-window", w.bits))
			rep := runJS(t, jsTimeout, "chromium-client.mjs", "ws://"+px.addr()+"/", "--suite", "compress", "--timeout", "80")
			requireAllPass(t, rep, compressCaseNames...)
			t.Logf("chromium %s: ws.extensions %q", rep.BrowserVersion, deref(rep.Extensions))
			if got := deref(rep.Extensions); got != w.want {
				t.Errorf("Chromium's ws.extensions = %q, want %q", got, w.want)
			}
			checkWire(t, w.bits, w.want, parseCompression(t, rep).Cases, px.decode(t), 0)
		})
	}
}

// TestNodeWSClientTakeoverBroadcast: on megaws --mode broadcast with
// takeover, two ws clients with their default offer and one without
// compression each get every message, whoever sent it, in order; the two
// compress both ways, each against its own window, and the third reads
// plain frames.
func TestNodeWSClientTakeoverBroadcast(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	px := startRecordingProxy(t, startMegaws(t, "--mode", "broadcast", "--compression", "--compression-window", "10"))
	rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+px.addr()+"/", "--suite", "broadcast", "--timeout", "60")
	requireAllPass(t, rep,
		"broadcast: 2 deflate clients and 1 without compression connected",
		"broadcast: 100 game-state messages and 64 KiB JSON from a deflate client reach all three",
		"broadcast: 50 game-state messages from the client without compression reach all three",
		"broadcast: 50 more from the second deflate client reach all three")
	cr := parseCompression(t, rep)
	if len(cr.Clients) != 3 {
		t.Fatalf("%d clients in the report, want 3", len(cr.Clients))
	}
	for _, c := range cr.Clients {
		t.Logf("ws's socket, %-18s %q: sent %d B as %d on the wire (%.1f%%), received %d B as %d (%.1f%%)", c.Name, c.Extensions, c.PayloadOut, c.WireOut, pctOf(c.WireOut, c.PayloadOut), c.PayloadIn, c.WireIn, pctOf(c.WireIn, c.PayloadIn))
	}

	// The proxy's record: the clients connected one after the other.
	conns := px.decode(t)
	if len(conns) != 3 {
		t.Fatalf("%d connections through the proxy, want 3", len(conns))
	}
	want := takeoverWindows[1].want
	sent := append(append(append([][]byte(nil), conns[0].Up.Msgs...), conns[2].Up.Msgs...), conns[1].Up.Msgs...)
	if len(sent) != 201 {
		t.Errorf("the clients sent %d messages, want 201", len(sent))
	}
	for i, w := range conns {
		name := cr.Clients[i].Name
		if w.Err != nil {
			t.Errorf("%s: %v", name, w.Err)
			continue
		}
		t.Logf("on the wire, %-18s: %s", name, w.summary())
		if wantExt := map[bool]string{true: want, false: ""}[i < 2]; w.Extensions != wantExt {
			t.Errorf("%s: the server answered %q, want %q", name, w.Extensions, wantExt)
		}
		if !equalMsgs(w.Down.Msgs, sent) {
			t.Errorf("%s received %d messages, not the %d the clients sent, in that order", name, len(w.Down.Msgs), len(sent))
		}
		if i == 2 {
			if w.Up.Compressed+w.Down.Compressed > 0 {
				t.Errorf("%s: %d compressed messages sent, %d received, on a connection without permessage-deflate", name, w.Up.Compressed, w.Down.Compressed)
			}
			continue
		}
		if w.Down.PlainBig > 0 || w.Down.Refs == 0 {
			t.Errorf("%s: %d broadcast messages of at least %d B uncompressed, %d reaching back into earlier ones: want none and some", name, w.Down.PlainBig, serveThreshold, w.Down.Refs)
		}
		if len(w.Up.Msgs) > 0 && (w.Up.Compressed != len(w.Up.Msgs) || w.Up.Refs == 0) {
			t.Errorf("%s sent %d messages, %d compressed, %d reaching back: want all compressed, with takeover", name, len(w.Up.Msgs), w.Up.Compressed, w.Up.Refs)
		}
		if w.Down.Bytes*100 > w.Down.payload()*40 {
			t.Errorf("%s: %.1f%% of the broadcast on the wire, want under 40%% with takeover", name, pctOf(w.Down.Bytes, w.Down.payload()))
		}
	}
}

func parseCompression(t *testing.T, rep *jsReport) *jsCompression {
	t.Helper()
	var cr compressionReport
	if err := json.Unmarshal([]byte(rep.raw), &cr); err != nil || cr.Compression == nil {
		t.Fatalf("%s: no compression figures in the report (%v): %s", rep.Client, err, rep.raw)
	}
	return cr.Compression
}

// checkWire matches the proxy's connections, from first on, with the cases
// (one connection each, in order) and checks each against the file
// comment's rules; ext is the Sec-WebSocket-Extensions megaws must answer.
func checkWire(t *testing.T, bits, ext string, cases []wireFigures, conns []wireConn, first int) {
	t.Helper()
	if len(cases) != len(compressCaseNames) || len(conns) != first+len(cases) {
		t.Fatalf("%d cases over %d connections, want %d over %d", len(cases), len(conns), len(compressCaseNames), first+len(compressCaseNames))
	}
	for i, w := range conns {
		if w.Err != nil {
			t.Errorf("connection %d: %v", i, w.Err)
		} else if w.Extensions != ext {
			t.Errorf("connection %d: the server answered %q, want %q", i, w.Extensions, ext)
		}
	}
	takeover := bits != "0"
	for i, c := range cases {
		w := conns[first+i]
		if w.Err != nil {
			continue
		}
		up, down := pctOf(w.Up.Bytes, c.PayloadOut), pctOf(w.Down.Bytes, c.PayloadIn)
		t.Logf("on the wire, %-12s: %s", c.Name, w.summary())
		switch {
		case w.Up.payload() != c.PayloadOut || w.Down.payload() != c.PayloadIn:
			t.Errorf("%s: %d B sent and %d received on the wire, the client counted %d and %d", c.Name, w.Up.payload(), w.Down.payload(), c.PayloadOut, c.PayloadIn)
		case !equalMsgs(w.Up.Msgs, w.Down.Msgs):
			t.Errorf("%s: the %d messages the server sent are not the %d it received", c.Name, len(w.Down.Msgs), len(w.Up.Msgs))
		}
		if w.Up.Compressed == 0 || w.Up.PlainBig > 0 {
			t.Errorf("%s: the client sent %d compressed messages, %d of at least %d B uncompressed: want some and none", c.Name, w.Up.Compressed, w.Up.PlainBig, serveThreshold)
		}
		if w.Down.Compressed == 0 || w.Down.PlainBig > 0 {
			t.Errorf("%s: the server sent %d compressed messages, %d of at least %d B uncompressed: want some and none", c.Name, w.Down.Compressed, w.Down.PlainBig, serveThreshold)
		}
		if takeover && (w.Up.Refs == 0 || w.Down.Refs == 0) {
			t.Errorf("%s: %d messages of the client and %d of the server reach back into earlier ones: takeover was agreed, want some both ways", c.Name, w.Up.Refs, w.Down.Refs)
		}
		limit := 60.0
		if c.Name == "game state" && takeover {
			limit = 32
		}
		if up > limit || down > limit {
			t.Errorf("%s: %.1f%% and %.1f%% of the payload on the wire, want both under %.0f%%", c.Name, up, down, limit)
		}
	}
}

func equalMsgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// recordingProxy forwards TCP connections to a server and records the
// bytes each carries in each direction, per connection in accept order.
type recordingProxy struct {
	ln     net.Listener
	target string
	live   atomic.Int64 // pipes still copying
	mu     sync.Mutex
	conns  []*[2]lockedBuffer // per connection: client->server, server->client
	socks  []net.Conn
	wg     sync.WaitGroup
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.socks {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *recordingProxy) addr() string { return p.ln.Addr().String() }

func (p *recordingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		rec := new([2]lockedBuffer)
		p.mu.Lock()
		p.conns = append(p.conns, rec)
		p.socks = append(p.socks, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		p.live.Add(2)
		go p.pipe(s, c, &rec[0])
		go p.pipe(c, s, &rec[1])
	}
}

// pipe copies from src to dst and into rec, and passes the end of the
// stream on.
func (p *recordingProxy) pipe(dst, src net.Conn, rec *lockedBuffer) {
	defer p.wg.Done()
	defer p.live.Add(-1)
	_, _ = io.Copy(io.MultiWriter(dst, rec), src)
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// decode waits (up to 10 s) until every connection has ended, then decodes
// what each carried.
func (p *recordingProxy) decode(t *testing.T) []wireConn {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.live.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.live.Load(); n > 0 {
		t.Logf("%d directions of proxied connections still open 10 s after the client finished; decoding what they carried so far", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]wireConn, len(p.conns))
	for i, rec := range p.conns {
		out[i] = decodeWireConn([]byte(rec[0].String()), []byte(rec[1].String()))
	}
	return out
}

// wireConn is a WebSocket connection as the proxy saw it.
type wireConn struct {
	Extensions string  // the server's Sec-WebSocket-Extensions
	Up, Down   wireDir // client->server, server->client
	Err        error   // a frame or message that breaks RFC 6455 or RFC 7692
}

// wireDir is one direction of a connection.
type wireDir struct {
	Bytes      int64    // TCP bytes, the HTTP head included
	Msgs       [][]byte // the data messages, inflated
	Compressed int      // messages sent with RSV1
	// Refs are the compressed messages that do not inflate on their own:
	// they reach back into earlier messages, through a shared window.
	Refs int
	// PlainBig are the messages of at least serveThreshold bytes sent
	// uncompressed.
	PlainBig int
}

func (d *wireDir) payload() int64 {
	var n int64
	for _, m := range d.Msgs {
		n += int64(len(m))
	}
	return n
}

func (w *wireConn) summary() string {
	dir := func(d *wireDir) string {
		return fmt.Sprintf("%d messages (%d compressed, %d reaching back), %d B of payload in %d B (%.1f%%)",
			len(d.Msgs), d.Compressed, d.Refs, d.payload(), d.Bytes, pctOf(d.Bytes, d.payload()))
	}
	return "client->server " + dir(&w.Up) + "; server->client " + dir(&w.Down)
}

var windowBitsRE = regexp.MustCompile(`(server|client)_max_window_bits=(\d+)`)

// decodeWireConn decodes a connection from the bytes each side sent.
func decodeWireConn(up, down []byte) wireConn {
	w := wireConn{Up: wireDir{Bytes: int64(len(up))}, Down: wireDir{Bytes: int64(len(down))}}
	head, _, ok := bytes.Cut(down, []byte("\r\n\r\n"))
	if !ok {
		w.Err = errors.New("no complete HTTP response from the server")
		return w
	}
	var exts []string
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(strings.TrimSpace(k), "Sec-WebSocket-Extensions") {
			exts = append(exts, strings.TrimSpace(v))
		}
	}
	w.Extensions = strings.Join(exts, ", ")
	pmd := strings.HasPrefix(w.Extensions, "permessage-deflate")
	bits := map[string]int{"server": 15, "client": 15}
	for _, m := range windowBitsRE.FindAllStringSubmatch(w.Extensions, -1) {
		bits[m[1]], _ = strconv.Atoi(m[2])
	}
	// A window of 2^bits bytes; a zlib sender asked for 8 bits uses 9.
	window := func(side string) int { return 1 << max(bits[side], 9) }
	takeover := func(side string) int {
		if !pmd || strings.Contains(w.Extensions, side+"_no_context_takeover") {
			return 0
		}
		return window(side)
	}
	if err := w.Up.decode(up, pmd, takeover("client")); err != nil {
		w.Err = fmt.Errorf("client->server: %w", err)
	} else if err := w.Down.decode(down, pmd, takeover("server")); err != nil {
		w.Err = fmt.Errorf("server->client: %w", err)
	}
	return w
}

// decode reads the frames after the HTTP head of raw (a truncated last
// frame ends it, as does a close frame), unmasks them, reassembles and
// inflates the messages. window is the shared window under takeover, 0
// without: each compressed message is inflated with the last window bytes
// of the compressed messages before it as the dictionary, and alone.
func (d *wireDir) decode(raw []byte, pmd bool, window int) error {
	_, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return errors.New("no complete HTTP head")
	}
	r := bytes.NewReader(body)
	var (
		msg        []byte
		inMsg, rsv bool
		hist       []byte
	)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil || int64(r.Len()) < h.Length {
			return nil // the end of the record
		}
		p := make([]byte, h.Length)
		_, _ = io.ReadFull(r, p)
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch {
		case h.OpCode == ws.OpClose:
			return nil
		case h.OpCode.IsControl():
			continue
		case h.Rsv&^0x4 != 0 || (h.Rsv != 0 && (!pmd || h.OpCode == ws.OpContinuation)):
			return fmt.Errorf("frame %v with reserved bits %03b (permessage-deflate %v)", h.OpCode, h.Rsv, pmd)
		case (h.OpCode == ws.OpContinuation) != inMsg:
			return fmt.Errorf("frame %v %s a fragmented message", h.OpCode, map[bool]string{true: "within", false: "outside"}[inMsg])
		case h.OpCode != ws.OpContinuation:
			msg, rsv = nil, h.Rsv != 0
		}
		msg = append(msg, p...)
		inMsg = !h.Fin
		if inMsg {
			continue
		}
		if !rsv {
			d.Msgs = append(d.Msgs, msg)
			if len(msg) >= serveThreshold {
				d.PlainBig++
			}
			continue
		}
		d.Compressed++
		dict := hist[max(0, len(hist)-window):]
		out, err := inflateMessage(msg, dict)
		if err != nil {
			return fmt.Errorf("message %d (%d B compressed) does not inflate with %d B of earlier messages as the window: %w", len(d.Msgs), len(msg), len(dict), err)
		}
		if alone, err := inflateMessage(msg, nil); err != nil || !bytes.Equal(alone, out) {
			d.Refs++
		}
		d.Msgs = append(d.Msgs, out)
		if window > 0 {
			hist = append(hist, out...)
			if len(hist) > 4*window {
				hist = append([]byte(nil), hist[len(hist)-window:]...)
			}
		}
	}
}

// inflateMessage inflates a permessage-deflate message with compress/flate
// (RFC 7692 §7.2.2: the 0x00 0x00 0xff 0xff the sender removed, then an
// empty final block).
func inflateMessage(p, dict []byte) ([]byte, error) {
	in := append(append(make([]byte, 0, len(p)+9), p...), 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff)
	return io.ReadAll(io.LimitReader(flate.NewReaderDict(bytes.NewReader(in), dict), 64<<20))
}
