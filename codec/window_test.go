package codec

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gobwas/ws"
)

// flateStream decodes a whole connection's worth of permessage-deflate
// messages the way a browser does with context takeover: one inflater over
// the messages with their 0x00 0x00 0xff 0xff tails put back.
func flateStream(msgs [][]byte) ([]byte, error) {
	var stream []byte
	for _, m := range msgs {
		stream = append(append(stream, m...), 0, 0, 0xff, 0xff)
	}
	stream = append(stream, 1, 0, 0, 0xff, 0xff)
	return io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
}

// flateMessage decodes one message on its own, as without context takeover.
func flateMessage(m []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(append(append([]byte(nil), m...), 0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff))))
}

// TestWindowRoundTrip compresses every message stream at every window size
// and several levels, with and without takeover, several connections
// interleaved on one WindowDeflater and one WindowInflater, and decodes the
// result with WindowInflater, with the strict reference decoder (which
// refuses any distance beyond the window) and with compress/flate as a
// browser would.
func TestWindowRoundTrip(t *testing.T) {
	const conns = 3
	for _, s := range messageStreams {
		n := 40
		if s.name == "mixed" {
			n = 10 // messages of up to 100 KB
		}
		if testing.Short() || raceEnabled {
			n /= 4
		}
		for _, level := range []int{0, 1, 3, 4, 6, 9} {
			d := NewWindowDeflater(level)
			var f WindowInflater
			for wbits := MinWindowBits; wbits <= MaxWindowBits; wbits++ {
				for _, takeover := range []bool{true, false} {
					name := fmt.Sprintf("%s/level%d/bits%d/takeover=%v", s.name, level, wbits, takeover)
					t.Run(name, func(t *testing.T) {
						type conn struct {
							msgs, wire [][]byte
							out, in    History
						}
						cs := make([]conn, conns)
						for c := range cs {
							// The connections of a loop need not share a window size.
							cs[c].out = NewHistory(wbits - c%2)
							cs[c].in = NewHistory(wbits - c%2)
							cs[c].msgs = s.messages(uint64(c+1), n)
						}
						var raw, wire int
						for i := range n {
							for c := range cs {
								c := &cs[c]
								msg := c.msgs[i]
								z := d.AppendCompress([]byte("prefix"), &c.out, msg, takeover)
								if string(z[:6]) != "prefix" {
									t.Fatal("dst prefix overwritten")
								}
								z = z[6:]
								c.wire = append(c.wire, z)
								raw, wire = raw+len(msg), wire+len(z)
								window := 1 << c.out.WindowBits()
								var hist []byte
								if takeover {
									hist = c.in.buf
								}
								ref, _, err := refInflate(hist, z, window)
								if err != nil || !bytes.Equal(ref, msg) {
									t.Fatalf("message %d: reference decoder: %v", i, err)
								}
								got, err := f.Inflate(&c.in, z, len(msg), takeover)
								if err != nil || !bytes.Equal(got, msg) {
									t.Fatalf("message %d (%d bytes): Inflate: %v", i, len(msg), err)
								}
								if takeover && !bytes.Equal(c.in.buf, c.out.buf) {
									t.Fatalf("message %d: histories differ", i)
								}
								if !takeover && (c.in.Len() != 0 || c.out.Len() != 0) {
									t.Fatal("history used without takeover")
								}
								if len(c.out.buf) > window || cap(c.out.buf) > window {
									t.Fatalf("history holds %d/%d bytes, window %d", len(c.out.buf), cap(c.out.buf), window)
								}
							}
						}
						for _, c := range cs {
							if takeover {
								got, err := flateStream(c.wire)
								if err != nil || !bytes.Equal(got, bytes.Join(c.msgs, nil)) {
									t.Fatalf("compress/flate over the stream: %v", err)
								}
								continue
							}
							for i, z := range c.wire {
								got, err := flateMessage(z)
								if err != nil || !bytes.Equal(got, c.msgs[i]) {
									t.Fatalf("compress/flate, message %d: %v", i, err)
								}
							}
						}
						if raw > 0 {
							t.Logf("%d -> %d bytes (%.1f%%)", raw, wire, 100*float64(wire)/float64(raw))
						}
					})
				}
			}
		}
	}
}

// TestWindowAdversarial compresses inputs that stress the edges: runs and
// periods exactly at and around the window size, the longest match, data
// larger than the internal chunk and stored block, and lone bytes.
func TestWindowAdversarial(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	period := func(p, n int) []byte {
		unit := make([]byte, p)
		for i := range unit {
			unit[i] = byte(rng.Uint32())
		}
		return bytes.Repeat(unit, n/p+1)[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	windows, levels := []int{8, 9, 10, 11, 12, 13, 14, 15}, []int{0, 1, 6, 9}
	if raceEnabled {
		windows, levels = []int{8, 12, 15}, []int{1, 6}
	}
	for _, wbits := range windows {
		w := 1 << wbits
		inputs := map[string][][]byte{
			"zeros":           {make([]byte, 3*w+7), make([]byte, 1), make([]byte, maxMatch+1)},
			"period=window":   {period(w, 3*w), period(w, w+5)},
			"period=window+1": {period(w+1, 3*w+3)},
			"period=window-1": {period(w-1, 3*w)},
			"period=258":      {period(258, 4*w), period(259, 2*w)},
			"big":             {period(1000, 200000), random(70000), bytes.Repeat([]byte("ab"), 40000)},
			"tiny":            {{}, {'x'}, {'x', 'x'}, {'x', 'x', 'x'}, {'x', 'x', 'x', 'x'}, {'x'}, {}},
			"split":           {random(w / 2), random(w / 2), random(w)},
			"all-bytes": {func() []byte {
				b := make([]byte, 256*4)
				for i := range b {
					b[i] = byte(i)
				}
				return b
			}()},
		}
		for name, msgs := range inputs {
			for _, level := range levels {
				t.Run(fmt.Sprintf("bits%d/%s/level%d", wbits, name, level), func(t *testing.T) {
					d := NewWindowDeflater(level)
					out, in := NewHistory(wbits), NewHistory(max(wbits, 9))
					var f WindowInflater
					var wire [][]byte
					for i, msg := range msgs {
						hist := append([]byte(nil), out.buf...)
						z := d.AppendCompress(nil, &out, msg, true)
						wire = append(wire, z)
						if got, _, err := refInflate(hist, z, w); err != nil || !bytes.Equal(got, msg) {
							t.Fatalf("message %d: reference decoder: %v", i, err)
						}
						if got, err := f.Inflate(&in, z, len(msg), true); err != nil || !bytes.Equal(got, msg) {
							t.Fatalf("message %d: Inflate: %v", i, err)
						}
					}
					if got, err := flateStream(wire); err != nil || !bytes.Equal(got, bytes.Join(msgs, nil)) {
						t.Fatalf("compress/flate: %v", err)
					}
				})
			}
		}
	}
}

// TestWindowBlockTypes checks that each kind of data gets the block type that
// pays: stored for random bytes, fixed Huffman for a short repetitive
// message, dynamic Huffman for long text.
func TestWindowBlockTypes(t *testing.T) {
	d := NewWindowDeflater(6)
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 3000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text []byte
	chat := newChatSim(1)
	for len(text) < 20000 {
		text = chat.next(text)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		typ  int
	}{
		{name: "random", msg: random, typ: 0},
		{name: "short", msg: []byte(`{"id":1,"id":1,"id":1,"id":1}`), typ: 1},
		{name: "text", msg: text, typ: 2},
	} {
		z := d.AppendCompress(nil, nil, tc.msg, false)
		_, types, err := refInflate(nil, z, 1<<15)
		if err != nil {
			t.Fatal(err)
		}
		if types[tc.typ] == 0 {
			t.Errorf("%s: block types (stored, fixed, dynamic) %v, want a %d", tc.name, types, tc.typ)
		}
		if tc.typ == 0 && len(z) > len(tc.msg)+6 {
			t.Errorf("random: %d bytes for %d", len(z), len(tc.msg))
		}
	}
}

// TestWindowEmptyMessage checks RFC 7692 §7.2.3.6: an empty message
// compresses to the single byte 0x00.
func TestWindowEmptyMessage(t *testing.T) {
	for _, level := range []int{0, 1, 6} {
		var h History
		if z := NewWindowDeflater(level).AppendCompress(nil, &h, nil, true); !bytes.Equal(z, []byte{0}) {
			t.Errorf("level %d: % x", level, z)
		}
	}
}

// TestWindowInflateFlate decodes compress/flate's output (a flate.Writer per
// connection with a sync flush per message, the tail removed) with
// WindowInflater, with takeover and a full window, without takeover and
// small windows, and checks that a reference beyond a too-small history is
// refused as invalid data.
func TestWindowInflateFlate(t *testing.T) {
	for _, s := range messageStreams {
		for _, level := range []int{flate.BestSpeed, flate.DefaultCompression, flate.BestCompression, flate.HuffmanOnly} {
			t.Run(fmt.Sprintf("%s/level%d", s.name, level), func(t *testing.T) {
				msgs := s.messages(9, 30)
				var buf bytes.Buffer
				fw, _ := flate.NewWriter(&buf, level)
				var f WindowInflater
				hist := NewHistory(15)
				for i, m := range msgs {
					buf.Reset()
					fw.Write(m)
					fw.Flush()
					z := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
					got, err := f.Inflate(&hist, z, len(m), true)
					if err != nil || !bytes.Equal(got, m) {
						t.Fatalf("takeover, message %d: %v", i, err)
					}
				}
				d := &Deflater{}
				d.fw, _ = flate.NewWriter(&d.dst, level)
				for _, wbits := range []int{9, 12} {
					small := NewHistory(wbits)
					for i, m := range msgs {
						got, err := f.Inflate(&small, d.AppendDeflate(nil, m), len(m), false)
						if err != nil || !bytes.Equal(got, m) {
							t.Fatalf("no takeover, bits %d, message %d: %v", wbits, i, err)
						}
					}
				}
			})
		}
	}
	// A 32 KiB-window stream referring 1,000 bytes back into a 512-byte history.
	var buf bytes.Buffer
	unit := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range unit {
		unit[i] = byte(rng.Uint32())
	}
	fw, _ := flate.NewWriter(&buf, 6)
	fw.Write(unit)
	fw.Flush()
	buf.Reset()
	fw.Write(unit)
	fw.Flush()
	z := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
	hist := NewHistory(9)
	hist.add(unit)
	before := append([]byte(nil), hist.buf...)
	var f WindowInflater
	if _, err := f.Inflate(&hist, z, 1<<20, true); !errors.Is(err, ErrInflate) {
		t.Fatalf("reference beyond the history: %v, want ErrInflate", err)
	}
	if !bytes.Equal(hist.buf, before) {
		t.Fatal("history changed by a failed message")
	}
}

// TestWindowInflateBomb checks that a message that inflates far beyond the
// limit is refused with ErrMessageTooBig (close 1009) after inflating little
// more than the limit, with and without takeover, and leaves the history as
// it was.
func TestWindowInflateBomb(t *testing.T) {
	const limit = 1 << 20
	bomb := bombPayload(64 << 20 / maxMatch)
	if len(bomb) > 128<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	for _, takeover := range []bool{true, false} {
		var f WindowInflater
		hist := NewHistory(12)
		hist.add([]byte("earlier message"))
		_, err := f.Inflate(&hist, bomb, limit, takeover)
		if !errors.Is(err, ErrMessageTooBig) || CloseCode(err) != ws.StatusMessageTooBig {
			t.Fatalf("takeover=%v: %v, want ErrMessageTooBig", takeover, err)
		}
		if cap(f.out) > 4*limit {
			t.Fatalf("inflated %d bytes for a %d-byte limit", cap(f.out), limit)
		}
		if string(hist.buf) != "earlier message" {
			t.Fatal("history changed by a refused message")
		}
		if got, err := f.Inflate(&hist, []byte{0}, limit, takeover); err != nil || len(got) != 0 {
			t.Fatalf("after a bomb: %q, %v", got, err)
		}
	}
}

// bombPayload returns a message of one zero byte followed by matches
// back-references of 258 bytes at distance 1: 258 times matches bytes of
// zeros in about a bit per 100 bytes.
func bombPayload(matches int) []byte {
	var e blockEncoder
	toks := make([]uint32, 0, lzBlockToks)
	raw := make([]byte, lzBlockToks*maxMatch)
	e.countLiteral(0)
	toks = append(toks, 0)
	for matches > 0 {
		for ; len(toks) < lzBlockToks && matches > 0; matches-- {
			toks = append(toks, matchToken(maxMatch, 1))
			e.countMatch(maxMatch, 1)
		}
		e.writeBlock(toks, raw[:len(toks)*maxMatch])
		toks = toks[:0]
	}
	e.syncFlush()
	return e.w.out
}

// TestWindowInflateInvalid feeds malformed and truncated data: every one is
// ErrInflate (close 1007), never a panic.
func TestWindowInflateInvalid(t *testing.T) {
	good := NewWindowDeflater(6).AppendCompress(nil, nil, bytes.Repeat([]byte("hello, world "), 100), false)
	// A fixed block whose first symbol copies 3 bytes from 1 byte back.
	var w bitWriter
	w.write(1<<1, 3)
	w.write(uint64(fixedLit.codes[257]), 7)
	w.write(uint64(fixedDist.codes[0]), 5)
	w.write(uint64(fixedLit.codes[endOfBlock]), 7)
	w.align()
	cases := map[string][]byte{
		"block type 3":   {0x07},
		"bad stored len": {0x00, 0x05, 0x00, 0x05, 0x00},
		"bad distance":   w.out,
		"truncated":      good[:len(good)/2],
	}
	var f WindowInflater
	for name, p := range cases {
		hist := NewHistory(10)
		_, err := f.Inflate(&hist, p, 1<<20, true)
		if !errors.Is(err, ErrInflate) || CloseCode(err) != ws.StatusInvalidFramePayloadData {
			t.Errorf("%s: %v, want ErrInflate", name, err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		p := make([]byte, rng.IntN(64))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		hist := NewHistory(9 + rng.IntN(7))
		hist.add(good[:rng.IntN(len(good))])
		out, err := f.Inflate(&hist, p, 4096, rng.IntN(2) == 0)
		if err == nil && len(out) > 4096 {
			t.Fatalf("output %d beyond the limit", len(out))
		}
		if err != nil && !errors.Is(err, ErrInflate) && !errors.Is(err, ErrMessageTooBig) {
			t.Fatalf("error %v", err)
		}
	}
}

// TestHistory checks the window arithmetic of History.
func TestHistory(t *testing.T) {
	var h History
	if h.WindowBits() != 15 || h.Len() != 0 || h.Cap() != 0 {
		t.Fatalf("zero value: bits %d, len %d, cap %d", h.WindowBits(), h.Len(), h.Cap())
	}
	h = NewHistory(3)
	if h.WindowBits() != MinWindowBits {
		t.Fatalf("bits 3 clamped to %d", h.WindowBits())
	}
	h = NewHistory(99)
	if h.WindowBits() != MaxWindowBits {
		t.Fatalf("bits 99 clamped to %d", h.WindowBits())
	}
	h = NewHistory(10)
	var all []byte
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		p := make([]byte, rng.IntN(700))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		h.add(p)
		all = append(all, p...)
		want := all[max(0, len(all)-1024):]
		if !bytes.Equal(h.buf, want) || h.Cap() > 1024 {
			t.Fatalf("history of %d bytes: len %d cap %d", len(all), h.Len(), h.Cap())
		}
	}
	h.SetWindowBits(9)
	if !bytes.Equal(h.buf, all[len(all)-512:]) {
		t.Fatal("SetWindowBits(9) kept the wrong bytes")
	}
	h.add(make([]byte, 5000))
	if h.Len() != 512 || !bytes.Equal(h.buf, make([]byte, 512)) {
		t.Fatal("a message larger than the window")
	}
	h.Reset()
	if h.Len() != 0 || h.WindowBits() != 9 {
		t.Fatal("Reset")
	}
	small := NewHistory(15)
	small.add([]byte("tiny"))
	if small.Cap() > 512 {
		t.Fatalf("4 bytes of history occupy %d", small.Cap())
	}
}

// TestHuffmanLimits builds codes for skewed frequencies (Fibonacci weights
// force depths far beyond the limit) and checks that every code is complete
// and within its length limit, and no worse than the limit makes necessary.
func TestHuffmanLimits(t *testing.T) {
	var hb huffBuilder
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := range 2000 {
		n := 2 + rng.IntN(numLitLen-1)
		maxBits := maxCodeBits
		if trial%3 == 0 {
			n = min(n, numCodeLen)
			maxBits = maxCLBits
		}
		freq := make([]uint32, n)
		switch trial % 4 {
		case 0:
			a, b := uint32(1), uint32(1)
			for i := range freq {
				if rng.IntN(3) != 0 && a < 40000 {
					freq[i] = a
					a, b = b, a+b
				}
			}
		case 1:
			freq[rng.IntN(n)] = 1 + rng.Uint32N(60000)
		default:
			for i := range freq {
				if rng.IntN(2) == 0 {
					freq[i] = 1 + rng.Uint32N(1000)
				}
			}
		}
		lens := make([]uint8, n)
		codes := make([]uint16, n)
		hb.build(freq, lens, codes, maxBits)
		kraft, used := 0, 0
		for s, l := range lens {
			if int(l) > maxBits {
				t.Fatalf("trial %d: length %d > %d", trial, l, maxBits)
			}
			if freq[s] != 0 && l == 0 {
				t.Fatalf("trial %d: symbol %d has no code", trial, s)
			}
			if l != 0 {
				kraft += 1 << (maxBits - int(l))
				used++
			}
		}
		if kraft != 1<<maxBits || used < 2 {
			t.Fatalf("trial %d: Kraft sum %d/%d with %d codes", trial, kraft, 1<<maxBits, used)
		}
		refCode(lens) // panics on an over-subscribed code
	}
}
