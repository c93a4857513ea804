package codec

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzDeflaters are reused from one input to the next, as a loop reuses its
// WindowDeflater from one connection to the next (and a new one costs 400 KB).
var fuzzDeflaters [10]*WindowDeflater

// FuzzWindowDeflate splits the input into messages at the cut bytes, sends
// them through a WindowDeflater with the fuzzed window, level and takeover,
// and checks that WindowInflater, the reference decoder (which refuses any
// distance beyond the window) and compress/flate all get the messages back.
//
//	go test ./codec -run='^$' -fuzz='^FuzzWindowDeflate$' -fuzztime=60s
func FuzzWindowDeflate(f *testing.F) {
	game := newGameSim(1)
	var seed []byte
	for range 5 {
		seed = append(game.next(seed), 0xfe)
	}
	f.Add(seed, uint8(0xfe), uint8(10), uint8(1), true)
	f.Add(bytes.Repeat([]byte("abcabcabd"), 300), uint8('d'), uint8(8), uint8(6), true)
	f.Add([]byte{}, uint8(0), uint8(15), uint8(9), false)
	f.Add(bytes.Repeat([]byte{0}, 3000), uint8(1), uint8(9), uint8(3), true)
	f.Fuzz(func(t *testing.T, data []byte, cut, wbits, level uint8, takeover bool) {
		bits := MinWindowBits + int(wbits)%(MaxWindowBits-MinWindowBits+1)
		d := fuzzDeflaters[level%10]
		if d == nil {
			d = NewWindowDeflater(int(level % 10))
			fuzzDeflaters[level%10] = d
		}
		var inf WindowInflater
		out, in := NewHistory(bits), NewHistory(bits)
		msgs := bytes.Split(data, []byte{cut})
		var wire [][]byte
		for i, m := range msgs {
			var hist []byte
			if takeover {
				hist = append(hist, out.buf...)
			}
			z := d.AppendCompress(nil, &out, m, takeover)
			wire = append(wire, z)
			if got, _, err := refInflate(hist, z, 1<<bits); err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d: reference decoder: %v", i, err)
			}
			if got, err := inf.Inflate(&in, z, len(m), takeover); err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d: Inflate: %v", i, err)
			}
		}
		if takeover {
			if got, err := flateStream(wire); err != nil || !bytes.Equal(got, bytes.Join(msgs, nil)) {
				t.Fatalf("compress/flate: %v", err)
			}
		}
	})
}

// FuzzWindowInflate feeds arbitrary payloads to WindowInflater with an
// arbitrary history: it must never panic, never return more than the limit,
// fail only with ErrInflate or ErrMessageTooBig, leave the history alone when
// it fails, and agree with compress/flate on what it accepts.
//
//	go test ./codec -run='^$' -fuzz='^FuzzWindowInflate$' -fuzztime=60s
func FuzzWindowInflate(f *testing.F) {
	d := NewWindowDeflater(6)
	h := NewHistory(10)
	game := newGameSim(2)
	var msg []byte
	for range 3 {
		msg = game.next(msg[:0])
		f.Add(append([]byte(nil), h.buf...), d.AppendCompress(nil, &h, msg, true), uint8(10))
	}
	f.Add([]byte{}, []byte{0}, uint8(15))
	f.Add([]byte("abc"), []byte{0x07}, uint8(9))
	f.Add([]byte{}, NewWindowDeflater(9).AppendCompress(nil, nil, make([]byte, 1<<16), false), uint8(12))
	f.Fuzz(func(t *testing.T, hist, p []byte, wbits uint8) {
		const limit = 1 << 14
		h := NewHistory(MinWindowBits + int(wbits)%(MaxWindowBits-MinWindowBits+1))
		h.add(hist)
		before := append([]byte(nil), h.buf...)
		var inf WindowInflater
		out, err := inf.Inflate(&h, p, limit, true)
		if err != nil {
			if !errors.Is(err, ErrInflate) && !errors.Is(err, ErrMessageTooBig) {
				t.Fatalf("error %v", err)
			}
			if !bytes.Equal(h.buf, before) {
				t.Fatal("history changed by a failed message")
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("%d bytes beyond the limit", len(out))
		}
		if ref, _, rerr := refInflate(before, p, 1<<15); rerr == nil && !bytes.Equal(ref, out) {
			t.Fatal("Inflate and the reference decoder disagree")
		}
	})
}
