package server_test

// Autobahn|Testsuite sections 12 and 13 (permessage-deflate, RFC 7692),
// mirrored against a real megaws echo server configured with context
// takeover (CompressionWindowBits 15 and 10) and without it (0).
//
// The cases follow the testsuite's case12_x_x.py: 18 message sizes from 16 B
// to 128 KiB, some auto-fragmented (the compressed payload cut into frames of
// 256 B to 32 KiB, RSV1 on the first), each sent one at a time and expected
// back intact, then a clean close. Section 12 uses Autobahn's default offer
// on its five data sets, regenerated here with the original sizes and kinds
// of content since the testsuite's files are not vendored (12.1 to 12.5 are
// JSON, bitmap, German text, HTML and PDF here; Autobahn numbers them in the
// iteration order of a Python dict); section 13 sends the JSON data set
// with the seven offers of 13.1-13.7. The offer_* cases add what
// Autobahn's offers never ask for (its client always hints
// client_no_context_takeover): clients that take over their own window,
// client_max_window_bits values, a lowered server window, skipped invalid
// offers and offers on two header lines, with messages of mixed sizes around
// the compression threshold and beyond the 32 KiB window.
//
// The client is codec's window compressor honouring what was negotiated: a
// History per direction, of the agreed window sizes, taken over only when the
// response allows. Every message from the server is decoded twice: by
// codec.WindowInflater with a history of exactly the agreed server window (a
// back-reference into older messages beyond it fails), and by compress/flate
// as an independent decoder (one stream over all messages under server
// takeover, each message followed by 0x00 0x00 0xff 0xff; a fresh stream per
// message without). The negotiated parameters are checked against RFC 7692
// §7.1 and against the server's documented policy (DeflatePolicy).
//
// Autobahn sends 1000 messages per case; here the count is cut so that a case
// sends about 128 KiB (at least 3 messages, all 1000 of the small sizes; less
// under -race, see abCount). MEGAWS_AUTOBAHN_FULL=1 runs the full counts.

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// abMsgSizes is MSG_SIZES of case12_x_x.py: payload length, message count,
// auto-fragment size (0: one frame); the index is the last number of the
// case (12.x.1 to 12.x.18).
var abMsgSizes = []struct{ size, count, frag int }{
	{16, 1000, 0}, {64, 1000, 0}, {256, 1000, 0}, {1024, 1000, 0}, {4096, 1000, 0},
	{8192, 1000, 0}, {16384, 1000, 0}, {32768, 1000, 0}, {65536, 1000, 0}, {131072, 1000, 0},
	{8192, 1000, 256}, {16384, 1000, 256}, {32768, 1000, 256}, {65536, 1000, 256}, {131072, 1000, 256},
	{131072, 1000, 1024}, {131072, 1000, 4096}, {131072, 1000, 32768},
}

// abDefaultOffer is autobahn's PerMessageDeflateOffer() (accept no context
// takeover, accept max window bits), the offer of section 12 and of 13.1.
const abDefaultOffer = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

// ab13Offers are the client offers of cases 13.1 to 13.7, as autobahn's
// get_extension_string writes them; 13.7 offers three in one header.
var ab13Offers = []string{
	abDefaultOffer,
	abDefaultOffer + "; server_no_context_takeover",
	abDefaultOffer + "; server_max_window_bits=8",
	abDefaultOffer + "; server_max_window_bits=15",
	abDefaultOffer + "; server_no_context_takeover; server_max_window_bits=8",
	abDefaultOffer + "; server_no_context_takeover; server_max_window_bits=15",
	abDefaultOffer + "; server_no_context_takeover; server_max_window_bits=8, " +
		abDefaultOffer + "; server_no_context_takeover, " + abDefaultOffer,
}

// ab13Bits9 are cases 13.3 and 13.5 with server_max_window_bits=9 instead
// of Autobahn's 8: the smallest window zlib compresses with (it refuses 8
// since 1.2.9), so zlib-based servers answer 8 with 9 or decline, and
// clients built on zlib offer 9. A bounded-window compressor honours both.
var ab13Bits9 = []struct {
	name, offer string
}{
	{name: "case_13_3_bits9", offer: abDefaultOffer + "; server_max_window_bits=9"},
	{name: "case_13_5_bits9", offer: abDefaultOffer + "; server_no_context_takeover; server_max_window_bits=9"},
}

// abExtraOffers are offers beyond Autobahn's (see the file comment). header
// is the whole Sec-WebSocket-Extensions header block, one or more lines.
var abExtraOffers = []struct{ name, header string }{
	{name: "offer_bare", header: "permessage-deflate"},
	{name: "offer_client_max_window_bits", header: "permessage-deflate; client_max_window_bits"},
	{name: "offer_client_max_window_bits_12", header: "permessage-deflate; client_max_window_bits=12"},
	{name: "offer_client_max_window_bits_8_server_max_window_bits_9", header: "permessage-deflate; client_max_window_bits=8; server_max_window_bits=9"},
	{name: "offer_server_max_window_bits_9", header: "permessage-deflate; server_max_window_bits=9"},
	{name: "offer_server_max_window_bits_12_client_max_window_bits", header: "permessage-deflate; server_max_window_bits=12; client_max_window_bits"},
	{name: "offer_server_no_context_takeover_client_max_window_bits", header: "permessage-deflate; server_no_context_takeover; client_max_window_bits"},
	{name: "offer_client_no_context_takeover", header: "permessage-deflate; client_no_context_takeover"},
	{name: "offer_invalid_ones_skipped", header: "permessage-deflate; server_max_window_bits=16, permessage-deflate; x_unknown, permessage-deflate; client_max_window_bits=7, permessage-deflate; client_max_window_bits=11"},
	{name: "offer_two_header_lines", header: "x-webkit-deflate-frame\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10; server_max_window_bits=10"},
	{name: "offer_quoted_value", header: `permessage-deflate; client_max_window_bits="10"`},
}

// abConfigs are the server configurations every case runs against. The
// compression level and threshold vary too, to reach more of the
// compressor: with the 256-byte default threshold the small messages of
// window_10 go out uncompressed, outside the shared window.
var abConfigs = []struct {
	name string
	cfg  server.Config
}{
	{name: "window_15", cfg: server.Config{Compression: true, CompressionWindowBits: 15, CompressionThreshold: 1}},
	{name: "window_10", cfg: server.Config{Compression: true, CompressionWindowBits: 10, CompressionLevel: 6}},
	{name: "window_0", cfg: server.Config{Compression: true, CompressionThreshold: 1, CompressionLevel: 9}},
}

// TestAutobahnDeflate runs sections 12 and 13 and the offer_* cases against
// each configuration of abConfigs.
func TestAutobahnDeflate(t *testing.T) {
	sets := abDataSets()
	for _, sc := range abConfigs {
		t.Run(sc.name, func(t *testing.T) {
			cfg := sc.cfg
			cfg.PingInterval, cfg.IdleTimeout = -1, -1
			_, addr := startServer(t, echo{}, cfg)
			var st abStats
			run := func(name, header string, ds abDataSet, msgs func(*abSource) []abMsg) {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					runDeflateCase(t, addr, header, sc.cfg.CompressionWindowBits, ds, msgs, &st)
				})
			}
			for j, ds := range sets {
				for i, sz := range abMsgSizes {
					run(fmt.Sprintf("case_12_%d_%d", j+1, i+1), abDefaultOffer, ds, abFixed(sz.size, abCount(sz.size, sz.count), sz.frag))
				}
			}
			for j, offer := range ab13Offers {
				for i, sz := range abMsgSizes {
					run(fmt.Sprintf("case_13_%d_%d", j+1, i+1), offer, sets[0], abFixed(sz.size, abCount(sz.size, sz.count), sz.frag))
				}
			}
			for _, x := range ab13Bits9 {
				for i, sz := range abMsgSizes {
					run(fmt.Sprintf("%s_%d", x.name, i+1), x.offer, sets[0], abFixed(sz.size, abCount(sz.size, sz.count), sz.frag))
				}
			}
			for _, x := range abExtraOffers {
				run(x.name, x.header, sets[0], abMixed)
			}
			t.Cleanup(func() {
				t.Logf("%s: %d cases, %d messages echoed, %d MB each way; client->server on the wire %.1f%% of the payload, server->client %.1f%% (%d of the server's messages uncompressed)",
					sc.name, st.cases.Load(), st.msgs.Load(), st.raw.Load()>>20, pct(st.up.Load(), st.raw.Load()), pct(st.down.Load(), st.raw.Load()), st.plain.Load())
				var answers []string
				st.responses.Range(func(k, v any) bool {
					answers = append(answers, fmt.Sprintf("%s: offer %q answered %q", sc.name, k, v))
					return true
				})
				slices.Sort(answers)
				for _, a := range answers {
					t.Log(a)
				}
			})
		})
	}
}

func pct(a, b int64) float64 { return 100 * float64(a) / float64(max(b, 1)) }

// abStats sums a configuration's traffic: payload bytes, and frame payload
// bytes on the wire in each direction.
type abStats struct {
	cases, msgs, raw, up, down, plain atomic.Int64
	responses                         sync.Map // offer (first line) -> Sec-WebSocket-Extensions answered
}

// abMsg is one message of a case: its payload and opcode, and the size of
// the frames its compressed payload is cut into (0: one frame).
type abMsg struct {
	op   ws.OpCode
	p    []byte
	frag int
}

// abSource hands out consecutive slices of a data set, wrapping around, as
// autobahn's sendOne does.
type abSource struct {
	ds  abDataSet
	pos int
}

func (s *abSource) next(n int) []byte {
	d := s.ds.data
	out := make([]byte, 0, n)
	for len(out) < n {
		k := min(n-len(out), len(d)-s.pos)
		out = append(out, d[s.pos:s.pos+k]...)
		s.pos = (s.pos + k) % len(d)
	}
	return out
}

func (s *abSource) op() ws.OpCode {
	if s.ds.binary {
		return ws.OpBinary
	}
	return ws.OpText
}

// abFixed is an Autobahn case: count messages of size bytes.
func abFixed(size, count, frag int) func(*abSource) []abMsg {
	return func(src *abSource) []abMsg {
		msgs := make([]abMsg, count)
		for i := range msgs {
			msgs[i] = abMsg{op: src.op(), p: src.next(size), frag: frag}
		}
		return msgs
	}
}

// abMixed is the message sequence of the offer_* cases: game ticks and data
// set slices from 16 B to 40 KiB (beyond a 15-bit window), text and binary,
// some fragmented, so that compressed and uncompressed messages alternate on
// a taken-over window.
func abMixed(src *abSource) []abMsg {
	var msgs []abMsg
	faust := &abSource{ds: abDataSets()[2]}
	for i := range 42 {
		switch i % 7 {
		case 0, 3:
			msgs = append(msgs, abMsg{op: ws.OpText, p: gameState(i)})
		case 1:
			msgs = append(msgs, abMsg{op: src.op(), p: src.next(16)})
		case 2:
			msgs = append(msgs, abMsg{op: ws.OpBinary, p: faust.next(300), frag: 64})
		case 4:
			msgs = append(msgs, abMsg{op: src.op(), p: src.next(4096)})
		case 5:
			msgs = append(msgs, abMsg{op: ws.OpBinary, p: faust.next(40 << 10), frag: 4096})
		case 6:
			msgs = append(msgs, abMsg{op: src.op(), p: src.next(200)})
		}
	}
	return msgs
}

// abCount is the number of messages a case sends: Autobahn's count with
// MEGAWS_AUTOBAHN_FULL=1, else about 128 KiB worth, at least 3. Under the
// race detector, where compression is many times slower, about 32 KiB worth,
// at least 1 and at most 250.
func abCount(size, count int) int {
	if os.Getenv("MEGAWS_AUTOBAHN_FULL") == "1" {
		return count
	}
	budget, least := 128<<10, 3
	if raceBuild() {
		budget, least, count = 32<<10, 1, min(count, 250)
	}
	return min(count, max(least, budget/size))
}

var raceBuild = sync.OnceValue(func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
})

// runDeflateCase opens a connection with the Sec-WebSocket-Extensions header
// block header, checks the response against the offers and the server's
// window policy (bits), echoes msgs one at a time and closes cleanly.
func runDeflateCase(t *testing.T, addr, header string, bits int, ds abDataSet, msgs func(*abSource) []abMsg, st *abStats) {
	c := dialRaw(t, addr)
	c.write([]byte(upgradeRequest("/", "Sec-WebSocket-Extensions: "+header+"\r\n")))
	resp := c.response()
	if resp.StatusCode != 101 {
		t.Fatalf("offer %q: status %d", header, resp.StatusCode)
	}
	got := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	offer, err := firstValidOffer(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := checkDeflateResponse(offer, got, bits)
	if err != nil {
		t.Fatalf("offer %q, server window bits %d: response %q: %v", header, bits, got, err)
	}
	st.responses.Store(strings.SplitN(header, "\r\n", 2)[0], got)
	cl := newDeflateClient(c, p, !offer.clientNoCtx)

	for i, m := range msgs(&abSource{ds: ds}) {
		up, down, compressed, err := cl.echo(m)
		if err != nil {
			t.Fatalf("message %d (%d bytes, %v, response %q): %v", i+1, len(m.p), m.op, got, err)
		}
		st.msgs.Add(1)
		st.raw.Add(int64(len(m.p)))
		st.up.Add(int64(up))
		st.down.Add(int64(down))
		if !compressed {
			st.plain.Add(1)
		}
	}
	if err := cl.ref.finish(); err != nil {
		t.Fatalf("compress/flate over the server's stream: %v", err)
	}
	c.closeNormal()
	st.cases.Add(1)
}

// deflateClient is the client side of a permessage-deflate connection that
// honours the negotiated parameters.
type deflateClient struct {
	c           *rawConn
	p           pmdParams // the response
	d           *codec.WindowDeflater
	takeOut     bool // the client takes over its own window
	out, in     codec.History
	inf         codec.WindowInflater
	ref         flateRef
	frames, buf []byte
}

func newDeflateClient(c *rawConn, p pmdParams, mayTakeOver bool) *deflateClient {
	cl := &deflateClient{c: c, p: p, d: codec.NewWindowDeflater(6), takeOut: mayTakeOver && !p.clientNoCtx}
	cl.out.SetWindowBits(orBits(p.clientBits))
	cl.in.SetWindowBits(orBits(p.serverBits))
	cl.ref.takeover = !p.serverNoCtx
	return cl
}

func orBits(b int) int {
	if b == 0 {
		return codec.MaxWindowBits
	}
	return b
}

// echo sends m compressed and checks the echo. It returns the frame payload
// bytes sent and received and whether the echo was compressed.
func (cl *deflateClient) echo(m abMsg) (up, down int, compressed bool, err error) {
	z := cl.d.AppendCompress(cl.buf[:0], &cl.out, m.p, cl.takeOut)
	cl.buf = z
	up = len(z)
	frames := cl.frames[:0]
	op, rsv := m.op, byte(0x4)
	for first := true; first || len(z) > 0; first = false {
		n := len(z)
		if m.frag > 0 {
			n = min(n, m.frag)
		}
		frames = append(frames, clientFrame(op, n == len(z), rsv, z[:n])...)
		z = z[n:]
		op, rsv = ws.OpContinuation, 0
	}
	cl.frames = frames
	cl.c.write(frames)

	f, err := cl.c.readFrame()
	if err != nil {
		return up, 0, false, fmt.Errorf("read echo: %w", err)
	}
	h := f.h
	switch {
	case h.Masked || !h.Fin || h.OpCode != m.op:
		return up, 0, false, fmt.Errorf("echo frame: op %v fin %v masked %v, want unmasked whole %v", h.OpCode, h.Fin, h.Masked, m.op)
	case h.Rsv != 0 && h.Rsv != 0x4:
		return up, 0, false, fmt.Errorf("echo frame has reserved bits %03b", h.Rsv)
	}
	down = len(f.payload)
	if h.Rsv == 0 {
		if !bytes.Equal(f.payload, m.p) {
			return up, down, false, errors.New("uncompressed echo differs")
		}
		return up, down, false, nil
	}
	got, err := cl.inf.Inflate(&cl.in, f.payload, 1<<30, !cl.p.serverNoCtx)
	if err != nil {
		return up, down, true, fmt.Errorf("codec.WindowInflater with a %d-bit history: %w", cl.in.WindowBits(), err)
	}
	if !bytes.Equal(got, m.p) {
		return up, down, true, fmt.Errorf("echo differs (codec.WindowInflater): %d bytes, want %d; first difference at %d", len(got), len(m.p), firstDiff(got, m.p))
	}
	got, err = cl.ref.message(f.payload, len(m.p))
	if err != nil {
		return up, down, true, fmt.Errorf("compress/flate: %w", err)
	}
	if !bytes.Equal(got, m.p) {
		return up, down, true, fmt.Errorf("echo differs (compress/flate): first difference at %d", firstDiff(got, m.p))
	}
	return up, down, true, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// flateRef decodes the server's compressed messages with compress/flate:
// under server takeover as one DEFLATE stream, each message followed by the
// 0x00 0x00 0xff 0xff the sender removed (RFC 7692 §7.2.2); without, each
// message on its own.
type flateRef struct {
	takeover bool
	src      appendSource
	fr       io.ReadCloser
}

// message decodes the next message, of n bytes.
func (f *flateRef) message(p []byte, n int) ([]byte, error) {
	if !f.takeover {
		in := concat(p, []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})
		return io.ReadAll(flate.NewReader(bytes.NewReader(in)))
	}
	f.src.b = append(append(f.src.b, p...), 0, 0, 0xff, 0xff)
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	}
	out := make([]byte, n)
	_, err := io.ReadFull(f.fr, out)
	return out, err
}

// finish ends the stream with an empty final block and checks that nothing
// is left: the messages ended where their echoes did.
func (f *flateRef) finish() error {
	if f.fr == nil {
		return nil
	}
	f.src.b = append(f.src.b, 1, 0, 0, 0xff, 0xff)
	rest, err := io.ReadAll(f.fr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%d bytes beyond the last message", len(rest))
	}
	return nil
}

// appendSource is an io.ByteReader over bytes appended as messages arrive,
// so compress/flate reads it without buffering ahead.
type appendSource struct{ b []byte }

func (s *appendSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func (s *appendSource) ReadByte() (byte, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c, nil
}

// pmdParams are the parameters of one permessage-deflate offer or response.
// A window of 0 means the parameter is absent; clientBitsBare marks
// client_max_window_bits without a value (offers only).
type pmdParams struct {
	serverNoCtx, clientNoCtx bool
	serverBits, clientBits   int
	clientBitsBare           bool
}

// parsePMD parses the parameters of one permessage-deflate element per RFC
// 7692 §7: known names, no duplicates, window values 8 to 15 in decimal
// without leading zeros (quoted or not). offer allows client_max_window_bits
// without a value.
func parsePMD(params []string, offer bool) (pmdParams, error) {
	var p pmdParams
	seen := map[string]bool{}
	for _, kv := range params {
		k, v, hasV := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		if seen[k] {
			return p, fmt.Errorf("%s twice", k)
		}
		seen[k] = true
		bitsOf := func() (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < 8 || n > 15 || strconv.Itoa(n) != v {
				return 0, fmt.Errorf("%s=%q is not 8 to 15", k, v)
			}
			return n, nil
		}
		var err error
		switch k {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasV {
				return p, fmt.Errorf("%s has a value", k)
			}
			if k == "server_no_context_takeover" {
				p.serverNoCtx = true
			} else {
				p.clientNoCtx = true
			}
		case "server_max_window_bits":
			p.serverBits, err = bitsOf()
		case "client_max_window_bits":
			if !hasV && offer {
				p.clientBitsBare = true
				continue
			}
			p.clientBits, err = bitsOf()
		default:
			return p, fmt.Errorf("unknown parameter %q", k)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// splitExtensions splits header values into elements, each a name and its
// parameters.
func splitExtensions(values ...string) [][]string {
	var out [][]string
	for _, v := range values {
		for _, el := range strings.Split(v, ",") {
			parts := strings.Split(el, ";")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			if parts[0] != "" {
				out = append(out, parts)
			}
		}
	}
	return out
}

// firstValidOffer returns the first well-formed permessage-deflate offer of
// a header block (header lines joined by CRLF; the first line's name is
// implied): the one RFC 7692 §5 says a server that accepts every valid
// offer picks.
func firstValidOffer(header string) (pmdParams, error) {
	var values []string
	for i, line := range strings.Split(header, "\r\n") {
		if i > 0 {
			_, line, _ = strings.Cut(line, ":")
		}
		values = append(values, line)
	}
	for _, el := range splitExtensions(values...) {
		if el[0] != "permessage-deflate" {
			continue
		}
		if p, err := parsePMD(el[1:], true); err == nil {
			return p, nil
		}
	}
	return pmdParams{}, fmt.Errorf("no valid permessage-deflate offer in %q", header)
}

// checkDeflateResponse checks a response against the offer it accepts (RFC
// 7692 §7.1) and the server's policy for a window of bits (0: no context
// takeover), as DeflatePolicy documents it: takeover in each direction the
// offer allows; the server's window is bits, lowered to an offered
// server_max_window_bits; a client is asked for a window below 15 only if it
// offered client_max_window_bits (else it gets client_no_context_takeover),
// and an offered value lowers it. It returns the response's parameters.
func checkDeflateResponse(offer pmdParams, resp string, bits int) (pmdParams, error) {
	els := splitExtensions(resp)
	if len(els) != 1 || els[0][0] != "permessage-deflate" {
		return pmdParams{}, errors.New("want exactly one permessage-deflate element")
	}
	got, err := parsePMD(els[0][1:], false)
	if err != nil {
		return got, err
	}
	// RFC 7692 §7.1.
	switch {
	case offer.serverNoCtx && !got.serverNoCtx:
		return got, errors.New("server_no_context_takeover offered, not in the response (§7.1.1.1)")
	case offer.serverBits != 0 && (got.serverBits == 0 || got.serverBits > offer.serverBits):
		return got, fmt.Errorf("server_max_window_bits=%d offered, response has %d (§7.1.2.1)", offer.serverBits, got.serverBits)
	case got.clientBits != 0 && offer.clientBits == 0 && !offer.clientBitsBare:
		return got, errors.New("client_max_window_bits in the response although not offered (§7.1.2.2)")
	case got.clientBits != 0 && offer.clientBits != 0 && got.clientBits > offer.clientBits:
		return got, fmt.Errorf("client_max_window_bits=%d above the offered %d (§7.1.2.2)", got.clientBits, offer.clientBits)
	}
	// The server's policy.
	serverTakeover := bits != 0 && !offer.serverNoCtx
	wantServer := 15
	if serverTakeover {
		wantServer = bits
	}
	if offer.serverBits != 0 {
		wantServer = min(wantServer, offer.serverBits)
	}
	clientTakeover := bits != 0 && !offer.clientNoCtx && (bits == 15 || offer.clientBitsBare || offer.clientBits != 0)
	wantClient := 15
	if clientTakeover {
		wantClient = bits
		if offer.clientBits != 0 {
			wantClient = min(wantClient, offer.clientBits)
		}
	}
	switch {
	case got.serverNoCtx == serverTakeover:
		return got, fmt.Errorf("server takeover %v, want %v", !got.serverNoCtx, serverTakeover)
	case orBits(got.serverBits) != wantServer:
		return got, fmt.Errorf("server window %d bits, want %d", orBits(got.serverBits), wantServer)
	case got.clientNoCtx == clientTakeover:
		return got, fmt.Errorf("client takeover %v, want %v", !got.clientNoCtx, clientTakeover)
	case clientTakeover && orBits(got.clientBits) != wantClient:
		return got, fmt.Errorf("client window %d bits, want %d", orBits(got.clientBits), wantClient)
	}
	return got, nil
}

// abDataSet is one of Autobahn's compression test files (its
// WS_COMPRESSION_TESTDATA), regenerated deterministically with the same
// size and the same kind of content: text sets are ASCII, so that any slice
// is valid UTF-8, as Autobahn's are.
type abDataSet struct {
	desc   string
	binary bool
	data   []byte
}

var abDataSets = sync.OnceValue(func() []abDataSet {
	return []abDataSet{
		{desc: "Large JSON data file (utf8)", data: genJSON(194237)},
		{desc: "Lena Picture, Bitmap 512x512 bw (binary)", binary: true, data: genBitmap()},
		{desc: "Human readable text, Goethe's Faust I (German) (binary)", binary: true, data: genGerman(222218)},
		{desc: "Large HTML file (utf8)", data: genHTML(263527)},
		{desc: "A larger PDF (binary)", binary: true, data: genPDF(1042328)},
	}
})

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

var (
	abFirst = []string{"Alice", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas"}
	abLast  = []string{"Meyer", "Rossi", "Novak", "Tanaka", "Okafor", "Silva", "Larsen", "Dubois", "Kowalski", "Nguyen"}
	abWords = []string{"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
		"eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim", "minim", "veniam"}
)

func sentence(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = pick(r, abWords)
	}
	return strings.Join(w, " ")
}

func genJSON(n int) []byte {
	r := rand.New(rand.NewPCG(12, 1))
	var b bytes.Buffer
	b.WriteString("[\n")
	for i := 0; b.Len() < n; i++ {
		first, last := pick(r, abFirst), pick(r, abLast)
		fmt.Fprintf(&b, `  {"_id": "%016x", "index": %d, "isActive": %t, "balance": "$%d,%03d.%02d", "age": %d, "eyeColor": %q, `+
			`"name": "%s %s", "email": "%s.%s@example.com", "registered": "20%02d-%02d-%02dT%02d:%02d:%02d -01:00", `+
			`"latitude": %.6f, "longitude": %.6f, "tags": [%q, %q, %q], "about": %q},`+"\n",
			r.Uint64(), i, r.IntN(2) == 0, r.IntN(4), r.IntN(1000), r.IntN(100), 20+r.IntN(50), pick(r, []string{"blue", "brown", "green"}),
			first, last, strings.ToLower(first), strings.ToLower(last), r.IntN(25), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60),
			r.Float64()*180-90, r.Float64()*360-180, pick(r, abWords), pick(r, abWords), pick(r, abWords), sentence(r, 8+r.IntN(12)))
	}
	return b.Bytes()[:n]
}

func genBitmap() []byte {
	const w, h = 512, 512
	le32 := func(b []byte, v int) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	b := []byte("BM")
	b = le32(b, 54+1024+w*h)
	b = le32(b, 0)
	b = le32(b, 54+1024)
	b = le32(b, 40)
	b = le32(b, w)
	b = le32(b, h)
	b = append(b, 1, 0, 8, 0)
	b = le32(b, 0)
	b = le32(b, w*h)
	b = le32(b, 2835)
	b = le32(b, 2835)
	b = le32(b, 256)
	b = le32(b, 0)
	for i := range 256 {
		b = append(b, byte(i), byte(i), byte(i), 0)
	}
	r := rand.New(rand.NewPCG(12, 2))
	for y := range h {
		for x := range w {
			v := 128 + 60*math.Sin(float64(x)/23)*math.Cos(float64(y)/31) + 40*math.Sin(float64(x+y)/57) + float64(r.IntN(17)-8)
			b = append(b, byte(min(255, max(0, v))))
		}
	}
	return b
}

func genGerman(n int) []byte {
	r := rand.New(rand.NewPCG(12, 3))
	speakers := []string{"FAUST", "MEPHISTOPHELES", "WAGNER", "MARGARETE", "MARTHE", "CHOR DER ENGEL"}
	words := []string{"Habe", "nun", "ach", "Philosophie", "Juristerei", "und", "Medizin", "leider", "auch", "Theologie",
		"durchaus", "studiert", "mit", "heißem", "Bemühn", "da", "steh", "ich", "armer", "Tor", "bin", "so", "klug", "als",
		"wie", "zuvor", "Geist", "Welt", "Natur", "Erde", "Schöpfung", "fühl", "Herz", "Brust", "Träume", "Glück", "Größe",
		"über", "Männer", "Mädchen", "Ewigkeit", "Augenblick", "verweile", "doch", "du", "bist", "schön"}
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "\n%s:\n", pick(r, speakers))
		for range 2 + r.IntN(6) {
			k := 4 + r.IntN(6)
			line := make([]string, k)
			for i := range line {
				line[i] = pick(r, words)
			}
			b.WriteString(strings.Join(line, " "))
			b.WriteString(pick(r, []string{",", ".", "!", "?", ";", ""}) + "\n")
		}
	}
	return b.Bytes()[:n]
}

func genHTML(n int) []byte {
	r := rand.New(rand.NewPCG(12, 4))
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Archive</title>\n<link rel=\"stylesheet\" href=\"/static/site.css\">\n</head>\n<body>\n<div id=\"main\" class=\"container\">\n")
	for i := 0; b.Len() < n; i++ {
		title := sentence(r, 3+r.IntN(5))
		fmt.Fprintf(&b, "<div class=\"article\" id=\"a%d\">\n  <h2><a href=\"/articles/%d/%s\">%s</a></h2>\n  <p class=\"meta\">by <a href=\"/authors/%s\">%s %s</a> on 2014-%02d-%02d</p>\n  <p>%s.</p>\n  <ul class=\"tags\">",
			i, 1000+i, strings.ReplaceAll(title, " ", "-"), title, strings.ToLower(pick(r, abLast)), pick(r, abFirst), pick(r, abLast), 1+r.IntN(12), 1+r.IntN(28), sentence(r, 20+r.IntN(40)))
		for range 1 + r.IntN(4) {
			t := pick(r, abWords)
			fmt.Fprintf(&b, "<li><a href=\"/tags/%s\">%s</a></li>", t, t)
		}
		b.WriteString("</ul>\n</div>\n")
	}
	return b.Bytes()[:n]
}

func genPDF(n int) []byte {
	r := rand.New(rand.NewPCG(12, 5))
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for obj := 1; b.Len() < n; obj++ {
		if obj%3 == 0 {
			fmt.Fprintf(&b, "%d 0 obj\n<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 %d 0 R >> >> /MediaBox [0 0 612 792] /Contents %d 0 R >>\nendobj\n", obj, obj+1, obj+2)
			fmt.Fprintf(&b, "BT /F1 10 Tf 72 %d Td (%s) Tj ET\n", 100+r.IntN(600), sentence(r, 10))
			continue
		}
		stream := make([]byte, 1024+r.IntN(8192))
		for i := range stream {
			stream[i] = byte(r.Uint32())
		}
		fmt.Fprintf(&b, "%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n", obj, len(stream))
		b.Write(stream)
		b.WriteString("\nendstream\nendobj\n")
	}
	return b.Bytes()[:n]
}
