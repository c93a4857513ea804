package codec

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/gobwas/ws"
)

// event is one result of decoding a client stream: a request head, a frame,
// or the error that ended the stream.
type event struct {
	head    string // the request head of a handshake, empty for frames
	path    string
	key     string
	h       ws.Header
	payload string
	err     error
}

func (e event) String() string {
	switch {
	case e.err != nil:
		return fmt.Sprintf("error %v", e.err)
	case e.head != "":
		return fmt.Sprintf("request %q", e.path)
	}
	return fmt.Sprintf("frame %v fin=%v len=%d", e.h.OpCode, e.h.Fin, e.h.Length)
}

// streamDecoder is the incremental decoder of the event loop, reduced to its
// protocol part: it keeps whatever bytes have arrived, takes the request head
// and then every complete frame from their front, unmasks payload bytes as they
// arrive (using UnmaskInPlace's offset) and validates text as it arrives, so a
// stream can be fed in any chunks.
type streamDecoder struct {
	buf      []byte
	http     bool // an HTTP request head comes first
	fragOp   ws.OpCode
	unmasked int  // payload bytes of the pending frame unmasked so far
	fed      int  // payload bytes of the pending frame given to utf8 so far
	utf8     UTF8 // text message in progress
	events   []event
	failed   bool
}

func (d *streamDecoder) fail(err error) {
	d.events = append(d.events, event{err: err})
	d.failed = true
}

func (d *streamDecoder) feed(chunk []byte) {
	if d.failed {
		return
	}
	d.buf = append(d.buf, chunk...)
	for !d.failed {
		if d.http {
			r, n, err := ParseRequest(d.buf, 0, 0)
			if err != nil {
				d.fail(err)
				return
			}
			if n == 0 {
				return
			}
			if err := r.Check(); err != nil {
				d.fail(err)
				return
			}
			d.events = append(d.events, event{head: string(d.buf[:n]), path: string(r.Path()), key: string(r.Key)})
			d.buf = d.buf[n:]
			d.http = false
			continue
		}
		h, n, err := DecodeHeader(d.buf)
		if err != nil {
			d.fail(err)
			return
		}
		if n == 0 {
			return
		}
		if err := CheckClientHeader(h, d.fragOp, false); err != nil {
			d.fail(err)
			return
		}
		avail := int(min(int64(len(d.buf)-n), h.Length))
		p := d.buf[n : n+avail]
		UnmaskInPlace(p[d.unmasked:], h.Mask, d.unmasked)
		d.unmasked = avail
		if h.OpCode == ws.OpText || (h.OpCode == ws.OpContinuation && d.fragOp == ws.OpText) {
			if h.OpCode == ws.OpText {
				if d.fed == 0 {
					d.utf8.Reset()
				}
			}
			if !d.utf8.Feed(p[d.fed:]) {
				d.fail(ErrInvalidUTF8)
				return
			}
			d.fed = avail
		}
		if int64(avail) < h.Length {
			return
		}
		d.unmasked, d.fed = 0, 0
		switch {
		case h.OpCode.IsControl():
		case !h.Fin && h.OpCode != ws.OpContinuation:
			d.fragOp = h.OpCode
		case h.Fin:
			if (h.OpCode == ws.OpText || d.fragOp == ws.OpText) && !d.utf8.Complete() {
				d.fail(ErrInvalidUTF8)
				return
			}
			d.fragOp = 0
		}
		d.events = append(d.events, event{h: h, payload: string(p)})
		d.buf = d.buf[n+avail:]
	}
}

// decodeChunks decodes stream fed in pieces cut at the given offsets.
func decodeChunks(stream []byte, http bool, cuts []int) []event {
	d := streamDecoder{http: http}
	prev := 0
	for _, c := range cuts {
		d.feed(stream[prev:c])
		prev = c
	}
	d.feed(stream[prev:])
	return d.events
}

// testStream is a client stream and the events it must decode to.
type testStream struct {
	wire   []byte
	http   bool
	events []event
}

func (s *testStream) request(raw, path, key string) {
	s.http = true
	s.wire = append(s.wire, raw...)
	s.events = append(s.events, event{head: raw, path: path, key: key})
}

// frame appends a masked frame; each frame gets its own mask.
func (s *testStream) frame(op ws.OpCode, fin bool, payload []byte) {
	mask := [4]byte{byte(len(s.events)), 0x5a, byte(len(payload)), 0xc3}
	s.wire = AppendFrameMasked(s.wire, op, fin, payload, mask)
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))}
	s.events = append(s.events, event{h: h, payload: string(payload)})
}

// raw appends bytes that end the stream with err.
func (s *testStream) raw(b []byte, err error) {
	s.wire = append(s.wire, b...)
	s.events = append(s.events, event{err: err})
}

const streamKey = "dGhlIHNhbXBsZSBub25jZQ=="

const streamRequest = "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n" +
	"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + streamKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"

// smallStream has a handshake with pipelined frames of each kind below 200 bytes.
func smallStream() *testStream {
	s := &testStream{}
	s.request(streamRequest, "/chat", streamKey)
	s.frame(ws.OpText, true, []byte("hello"))
	s.frame(ws.OpBinary, true, nil)
	s.frame(ws.OpPing, true, []byte("p"))
	s.frame(ws.OpText, false, []byte("fr\xc3"))
	s.frame(ws.OpPong, true, nil)
	s.frame(ws.OpContinuation, false, []byte("\xa9g"))
	s.frame(ws.OpContinuation, true, []byte("ment €"))
	s.frame(ws.OpBinary, true, bytes.Repeat([]byte{0xff}, 125))
	s.frame(ws.OpText, true, textPayload(126))
	s.frame(ws.OpClose, true, []byte{0x03, 0xe8, 'b', 'y', 'e'})
	return s
}

// bigStream has frames of every length form at its boundaries and a
// fragmented text message whose characters straddle the fragments.
func bigStream() *testStream {
	s := &testStream{}
	s.request(streamRequest, "/chat", streamKey)
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70001} {
		s.frame(ws.OpText, true, textPayload(n))
		s.frame(ws.OpBinary, true, bytes.Repeat([]byte{byte(n)}, n))
	}
	text := textPayload(100_000)
	s.frame(ws.OpText, false, text[:33_333])
	s.frame(ws.OpPing, true, []byte("mid-message"))
	s.frame(ws.OpContinuation, false, text[33_333:66_667])
	s.frame(ws.OpContinuation, true, text[66_667:])
	s.frame(ws.OpClose, true, []byte{0x03, 0xe8})
	return s
}

// badStreams end in a protocol error after valid frames.
func badStreams() map[string]*testStream {
	m := map[string]*testStream{}

	s := smallStream()
	s.events = s.events[:len(s.events)-1]
	s.wire = s.wire[:len(s.wire)-11] // drop the close frame
	s.frame(ws.OpText, false, []byte("ok é "))
	s.raw(AppendFrameMasked(nil, ws.OpContinuation, true, []byte("a\xed\xa0\x80 surrogate"), mask0), ErrInvalidUTF8)
	m["surrogate in continuation"] = s

	s = &testStream{}
	s.frame(ws.OpText, true, []byte("ok"))
	s.raw(AppendFrameMasked(nil, ws.OpText, true, append(bytes.Repeat([]byte("a"), 300), 0xf4, 0x90, 0x80, 0x80), mask0), ErrInvalidUTF8)
	m["above U+10FFFF in 16-bit frame"] = s

	s = &testStream{}
	s.frame(ws.OpText, true, []byte("ok"))
	s.raw(AppendFrameMasked(nil, ws.OpText, true, []byte("truncated \xe2\x82"), mask0), ErrInvalidUTF8)
	m["truncated at end of message"] = s

	s = &testStream{}
	s.frame(ws.OpBinary, true, []byte("ok"))
	s.raw(AppendFrame(nil, ws.OpBinary, true, []byte("unmasked")), ErrUnmaskedFrame)
	m["unmasked"] = s

	s = &testStream{}
	s.frame(ws.OpPing, true, nil)
	s.raw([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, ErrLengthMSB)
	m["length msb"] = s

	s = &testStream{}
	s.frame(ws.OpText, false, []byte("a"))
	s.raw(AppendFrameMasked(nil, ws.OpText, true, []byte("b"), mask0), ErrExpectedContinue)
	m["expected continuation"] = s

	s = &testStream{}
	s.request(streamRequest, "/chat", streamKey)
	s.raw(AppendFrameMasked(nil, 0xb, true, nil, mask0), ErrReservedOpCode)
	m["reserved opcode after handshake"] = s

	s = &testStream{http: true}
	s.raw([]byte("GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n"), ErrBadRequest)
	m["obs-fold"] = s
	return m
}

func checkEvents(t *testing.T, what string, got, want []event) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		n := min(len(got), len(want))
		for i := 0; i < n; i++ {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("%s: event %d: got %v, want %v (%d vs %d events)", what, i, got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
}

// TestStreamChops splits small streams at every byte boundary, and at every
// pair of boundaries in the frame part, and checks that the events are those
// of the one-shot decoding.
func TestStreamChops(t *testing.T) {
	streams := badStreams()
	streams["valid"] = smallStream()
	for name, s := range streams {
		t.Run(name, func(t *testing.T) {
			whole := decodeChunks(s.wire, s.http, nil)
			checkEvents(t, "one shot", whole, s.events)
			for k := 0; k <= len(s.wire); k++ {
				checkEvents(t, fmt.Sprintf("split at %d", k), decodeChunks(s.wire, s.http, []int{k}), whole)
			}
			cuts := make([]int, len(s.wire))
			for i := range cuts {
				cuts[i] = i
			}
			checkEvents(t, "byte by byte", decodeChunks(s.wire, s.http, cuts), whole)
			// Every pair of cuts in a window of the frame part.
			start := len(s.wire) - min(len(s.wire), 96)
			for i := start; i <= len(s.wire); i++ {
				for j := i; j <= len(s.wire); j++ {
					checkEvents(t, fmt.Sprintf("cuts %d,%d", i, j), decodeChunks(s.wire, s.http, []int{i, j}), whole)
				}
			}
		})
	}
}

// TestStreamRandomChunks feeds the big stream in random chunk sizes.
func TestStreamRandomChunks(t *testing.T) {
	s := bigStream()
	whole := decodeChunks(s.wire, s.http, nil)
	checkEvents(t, "one shot", whole, s.events)
	for seed := int64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewSource(seed))
		maxChunk := []int{7, 100, 1500, 70000}[seed%4]
		var cuts []int
		for c := rng.Intn(maxChunk) + 1; c < len(s.wire); c += rng.Intn(maxChunk) + 1 {
			cuts = append(cuts, c)
		}
		checkEvents(t, fmt.Sprintf("seed %d max chunk %d", seed, maxChunk), decodeChunks(s.wire, s.http, cuts), whole)
	}
}
