package codec

import (
	"bytes"
	"compress/flate"
	"fmt"
	"testing"
)

// The window benchmarks run benchConns connections round robin through one
// compressor, as one event loop does, each connection with its own message
// stream. wire% is the compressed size as a percentage of the raw size.
const (
	benchConns = 16
	benchMsgs  = 512
)

type benchCase struct {
	stream   messageStream
	wbits    int
	takeover bool
}

func windowBenchCases() []benchCase {
	var cases []benchCase
	for _, s := range messageStreams[:2] {
		for _, wbits := range []int{10, 12, 15} {
			for _, takeover := range []bool{true, false} {
				cases = append(cases, benchCase{stream: s, wbits: wbits, takeover: takeover})
			}
		}
	}
	return cases
}

func (c benchCase) name() string {
	mode := "takeover"
	if !c.takeover {
		mode = "no-takeover"
	}
	return fmt.Sprintf("%s/bits%d/%s", c.stream.name, c.wbits, mode)
}

// benchMessages returns benchMsgs messages for each of benchConns connections.
func benchMessages(s messageStream) ([][][]byte, int) {
	msgs := make([][][]byte, benchConns)
	raw := 0
	for c := range msgs {
		msgs[c] = s.messages(uint64(c+1), benchMsgs)
		for _, m := range msgs[c] {
			raw += len(m)
		}
	}
	return msgs, raw
}

// BenchmarkWindowDeflate compresses game-state and chat messages with
// WindowDeflater at levels 1, 2 and 6, and with compress/flate as megaws could
// use it: a flate.Writer per connection kept across messages (takeover, 32
// KiB window, ~650 KB per connection), the codec's Deflater reset per message
// (no takeover), and flate.NewWriterDict per message with the connection's
// history as dictionary (bounded memory, paid in setup per message).
func BenchmarkWindowDeflate(b *testing.B) {
	for _, level := range []int{1, 2, 6} {
		for _, bc := range windowBenchCases() {
			b.Run(fmt.Sprintf("level%d/%s", level, bc.name()), func(b *testing.B) {
				msgs, _ := benchMessages(bc.stream)
				hists := make([]History, benchConns)
				for c := range hists {
					hists[c] = NewHistory(bc.wbits)
				}
				d := NewWindowDeflater(level)
				var out []byte
				raw, wire := 0, 0
				b.ReportAllocs()
				b.SetBytes(int64(len(msgs[0][0])))
				i := 0
				for b.Loop() {
					c, m := i%benchConns, msgs[i%benchConns][i/benchConns%benchMsgs]
					out = d.AppendCompress(out[:0], &hists[c], m, bc.takeover)
					raw, wire = raw+len(m), wire+len(out)
					i++
				}
				b.ReportMetric(100*float64(wire)/float64(raw), "wire%")
			})
		}
	}
	for _, s := range messageStreams[:2] {
		for _, level := range []int{1, 6} {
			b.Run(fmt.Sprintf("flate-stream/level%d/%s/bits15/takeover", level, s.name), func(b *testing.B) {
				msgs, _ := benchMessages(s)
				var dst appendWriter
				ws := make([]*flate.Writer, benchConns)
				for c := range ws {
					ws[c], _ = flate.NewWriter(&dst, level)
				}
				raw, wire := 0, 0
				b.ReportAllocs()
				b.SetBytes(int64(len(msgs[0][0])))
				i := 0
				for b.Loop() {
					c, m := i%benchConns, msgs[i%benchConns][i/benchConns%benchMsgs]
					dst.b = dst.b[:0]
					ws[c].Write(m)
					ws[c].Flush()
					raw, wire = raw+len(m), wire+len(dst.b)-4
					i++
				}
				b.ReportMetric(100*float64(wire)/float64(raw), "wire%")
			})
			b.Run(fmt.Sprintf("flate-reset/level%d/%s/bits15/no-takeover", level, s.name), func(b *testing.B) {
				msgs, _ := benchMessages(s)
				d, _ := NewDeflater(level)
				var out []byte
				raw, wire := 0, 0
				b.ReportAllocs()
				b.SetBytes(int64(len(msgs[0][0])))
				i := 0
				for b.Loop() {
					m := msgs[i%benchConns][i/benchConns%benchMsgs]
					out = d.AppendDeflate(out[:0], m)
					raw, wire = raw+len(m), wire+len(out)
					i++
				}
				b.ReportMetric(100*float64(wire)/float64(raw), "wire%")
			})
		}
		// compress/flate ignores a dictionary at BestSpeed, so level 2.
		b.Run(fmt.Sprintf("flate-newwriterdict/level2/%s/bits12/takeover", s.name), func(b *testing.B) {
			msgs, _ := benchMessages(s)
			hists := make([]History, benchConns)
			for c := range hists {
				hists[c] = NewHistory(12)
			}
			var dst appendWriter
			raw, wire := 0, 0
			b.ReportAllocs()
			b.SetBytes(int64(len(msgs[0][0])))
			i := 0
			for b.Loop() {
				c, m := i%benchConns, msgs[i%benchConns][i/benchConns%benchMsgs]
				dst.b = dst.b[:0]
				fw, _ := flate.NewWriterDict(&dst, 2, hists[c].buf)
				fw.Write(m)
				fw.Flush()
				hists[c].add(m)
				raw, wire = raw+len(m), wire+len(dst.b)-4
				i++
			}
			b.ReportMetric(100*float64(wire)/float64(raw), "wire%")
		})
	}
}

// BenchmarkWindowInflate decompresses the output of WindowDeflater (level 1)
// with WindowInflater, and without takeover also with the codec's Inflater.
func BenchmarkWindowInflate(b *testing.B) {
	for _, bc := range windowBenchCases() {
		msgs, _ := benchMessages(bc.stream)
		wire := make([][][]byte, benchConns)
		d := NewWindowDeflater(1)
		for c := range wire {
			h := NewHistory(bc.wbits)
			for _, m := range msgs[c] {
				wire[c] = append(wire[c], d.AppendCompress(nil, &h, m, bc.takeover))
			}
		}
		b.Run(bc.name(), func(b *testing.B) {
			hists := make([]History, benchConns)
			for c := range hists {
				hists[c] = NewHistory(bc.wbits)
			}
			var f WindowInflater
			b.ReportAllocs()
			b.SetBytes(int64(len(msgs[0][0])))
			i := 0
			for b.Loop() {
				c, k := i%benchConns, i/benchConns%benchMsgs
				if k == 0 {
					hists[c].Reset()
				}
				out, err := f.Inflate(&hists[c], wire[c][k], 1<<20, bc.takeover)
				if err != nil || len(out) != len(msgs[c][k]) {
					b.Fatal(err)
				}
				i++
			}
		})
		if !bc.takeover {
			b.Run("flate-Inflater/"+bc.name(), func(b *testing.B) {
				var f Inflater
				b.ReportAllocs()
				b.SetBytes(int64(len(msgs[0][0])))
				i := 0
				for b.Loop() {
					c, k := i%benchConns, i/benchConns%benchMsgs
					if out, err := f.Inflate(wire[c][k], 1<<20); err != nil || !bytes.Equal(out, msgs[c][k]) {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
