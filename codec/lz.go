package codec

import (
	"encoding/binary"
	"math/bits"
)

const (
	lzHashBits  = 15
	lzHashMul   = 0x1e35a7bd
	lzMinMatch  = 4       // matches are found through a hash of 4 bytes
	lzChunk     = 1 << 15 // message bytes compressed per pass over the window
	lzBlockToks = 1 << 14 // tokens per block; keeps every frequency below 2^16
	// lzRebase is where absolute positions wrap back to 1, clearing head.
	lzRebase = 1 << 31
)

// lzConfig is zlib's configuration_table row for a level: lazy matching
// stops looking once a match of lazy bytes is in hand (in greedy mode, lazy
// is the longest match whose positions are all hashed), the chain is cut to a
// quarter after a match of good bytes, a match of nice bytes ends the search,
// and at most chain candidates are tried. The fastest levels also index only
// every step-th string of the history, which is what a message pays for with
// context takeover (a match found from such a string is extended backwards,
// so only matches shorter than step+3 bytes are lost).
type lzConfig struct {
	good, lazy, nice, chain int
	greedy                  bool
	step                    int // history strings indexed: every step-th
}

var lzLevels = [10]lzConfig{
	{},
	{good: 4, lazy: 4, nice: 8, chain: 4, greedy: true, step: 3},
	{good: 4, lazy: 5, nice: 16, chain: 8, greedy: true, step: 2},
	{good: 4, lazy: 6, nice: 32, chain: 32, greedy: true, step: 1},
	{good: 4, lazy: 4, nice: 16, chain: 16, step: 1},
	{good: 8, lazy: 16, nice: 32, chain: 32, step: 1},
	{good: 8, lazy: 16, nice: 128, chain: 128, step: 1},
	{good: 8, lazy: 32, nice: 128, chain: 256, step: 1},
	{good: 32, lazy: 128, nice: 258, chain: 1024, step: 1},
	{good: 32, lazy: 258, nice: 258, chain: 4096, step: 1},
}

// WindowDeflater compresses permessage-deflate messages (RFC 7692) with a
// bounded LZ77 window, with or without context takeover, keeping all of its
// working memory (hash chains, tokens, Huffman tables, about 400 KB) to
// itself so that one WindowDeflater per event loop serves every connection
// of the loop: the only per-connection state is the History. Each message
// re-indexes its connection's history before compressing, which costs time
// proportional to the window; small windows are cheap.
//
// A WindowDeflater is not safe for concurrent use. Create it with
// NewWindowDeflater.
type WindowDeflater struct {
	cfg   lzConfig
	level int

	// head maps a hash of 4 bytes to the absolute position of the latest
	// string with that hash, prev links each position to the previous one in
	// the same window-sized ring. A position p is at win[p-off]; positions
	// below off belong to earlier messages, so nothing is cleared between
	// messages.
	head  [1 << lzHashBits]uint32
	prev  [1 << MaxWindowBits]uint32
	off   uint32
	mask  uint32 // window size - 1
	shift uint32 // 32 - hash bits in use
	win   []byte
	toks  []uint32
	enc   blockEncoder
}

// NewWindowDeflater returns a WindowDeflater at a zlib compression level:
// 1 (fastest) to 9 (smallest), 0 for stored blocks only; a negative level
// means 6, zlib's default, and levels above 9 mean 9. Levels 1 to 3 match
// greedily, 4 to 9 lazily, with zlib's search limits.
func NewWindowDeflater(level int) *WindowDeflater {
	if level < 0 {
		level = 6
	}
	level = min(level, 9)
	return &WindowDeflater{
		cfg:   lzLevels[level],
		level: level,
		off:   1,
		win:   make([]byte, 0, 1<<MaxWindowBits+lzChunk),
		toks:  make([]uint32, 0, lzBlockToks),
	}
}

// AppendCompress appends to dst the permessage-deflate payload of the
// message p (RFC 7692 §7.2.1): DEFLATE blocks ending with a sync flush whose
// final 0x00 0x00 0xff 0xff is left out; the frame that carries it must have
// RSV1 set. No back-reference reaches farther than the window of hist,
// 2^hist.WindowBits() bytes (the agreed server_max_window_bits).
//
// With takeover, the bytes in hist are the preset dictionary (they are what
// the peer's inflater holds from earlier messages) and p is appended to hist
// afterwards. Without takeover only the window size of hist is used (an
// empty History from NewHistory costs no buffer), and a nil hist means a
// 2^15-byte window. p is not retained.
func (d *WindowDeflater) AppendCompress(dst []byte, hist *History, p []byte, takeover bool) []byte {
	wbits := MaxWindowBits
	if hist != nil {
		wbits = hist.WindowBits()
	} else {
		takeover = false
	}
	d.enc.w.out = dst
	if d.level == 0 {
		d.enc.writeStored(p)
	} else {
		var h []byte
		if takeover {
			h = hist.buf
		}
		d.compress(h, p, wbits)
	}
	d.enc.syncFlush()
	if takeover {
		hist.add(p)
	}
	out := d.enc.w.out
	d.enc.w.out = nil
	return out
}

// compress writes the blocks of p, which follows the history h, with a
// window of 2^wbits bytes.
func (d *WindowDeflater) compress(h, p []byte, wbits int) {
	end := d.off + uint32(len(d.win))
	if end >= lzRebase {
		clear(d.head[:])
		end = 1
	}
	d.off = end
	d.mask = 1<<wbits - 1
	d.shift = 32 - uint32(min(wbits+1, lzHashBits))
	d.win = append(d.win[:0], h...)
	size := 1 << wbits
	for first := true; len(p) > 0; first = false {
		if !first && len(d.win) > size {
			drop := len(d.win) - size
			d.win = d.win[:copy(d.win, d.win[drop:])]
			d.off += uint32(drop)
		}
		n := min(len(p), lzChunk)
		start := len(d.win)
		d.win = append(d.win, p[:n]...)
		p = p[n:]
		if first {
			// The history is indexed once the message follows it, so that
			// its last strings hash with the message's first bytes.
			d.insertRange(0, min(start, len(d.win)-lzMinMatch+1), d.cfg.step)
		}
		if d.cfg.greedy {
			d.greedy(start)
		} else {
			d.lazy(start)
		}
	}
}

// insert records the string at win[i:] in the hash chains and returns the
// position of the previous string with the same hash.
func (d *WindowDeflater) insert(i int) uint32 {
	h := binary.LittleEndian.Uint32(d.win[i:]) * lzHashMul >> d.shift & (1<<lzHashBits - 1)
	pos := d.off + uint32(i)
	old := d.head[h]
	d.head[h] = pos
	d.prev[pos&d.mask&(1<<MaxWindowBits-1)] = old
	return old
}

// insertRange inserts every step-th string at win[from:to], each with 4
// bytes.
func (d *WindowDeflater) insertRange(from, to, step int) {
	if from >= to {
		return
	}
	step = max(step, 1)
	win := d.win[:to+lzMinMatch-1]
	head, prev := &d.head, &d.prev
	shift, mask := d.shift, d.mask&(1<<MaxWindowBits-1)
	for i := from; i < to; i += step {
		h := binary.LittleEndian.Uint32(win[i:i+4]) * lzHashMul >> shift & (1<<lzHashBits - 1)
		pos := d.off + uint32(i)
		prev[pos&mask] = head[h]
		head[h] = pos
	}
}

// findMatch returns the longest match longer than best for the string at
// win[i:], searching the chain from the position cand, or 0.
func (d *WindowDeflater) findMatch(i int, cand uint32, best, chain int) (length int, dist uint32) {
	win := d.win
	maxLen := min(maxMatch, len(win)-i)
	if maxLen < lzMinMatch {
		return 0, 0
	}
	nice := min(d.cfg.nice, maxLen)
	best = max(best, lzMinMatch-1)
	if best >= maxLen {
		return 0, 0
	}
	pos := d.off + uint32(i)
	limit := d.off
	if pos-limit > d.mask+1 {
		limit = pos - (d.mask + 1)
	}
	cur := win[i : i+maxLen]
	for ; chain > 0 && cand >= limit && cand < pos; chain-- {
		j := int(cand - d.off)
		if win[j+best] == cur[best] {
			if n := matchLen(win[j:j+maxLen], cur); n > best {
				best, length, dist = n, n, pos-cand
				if n >= nice {
					break
				}
			}
		}
		next := d.prev[cand&d.mask]
		if next >= cand {
			break
		}
		cand = next
	}
	return length, dist
}

// matchLen returns the length of the common prefix of a and b, len(a) <= len(b).
func matchLen(a, b []byte) int {
	n := 0
	for len(a)-n >= 8 {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

func (d *WindowDeflater) literal(b byte) {
	d.toks = append(d.toks, uint32(b))
	d.enc.countLiteral(b)
}

func (d *WindowDeflater) match(length int, dist uint32) {
	d.toks = append(d.toks, matchToken(length, dist))
	d.enc.countMatch(length, dist)
}

// flush writes the tokens gathered since win[from] up to win[to] as a block.
func (d *WindowDeflater) flush(from, to int) {
	d.enc.writeBlock(d.toks, d.win[from:to])
	d.toks = d.toks[:0]
}

// greedy tokenizes win[start:] taking the first match found at each
// position (zlib's deflate_fast).
func (d *WindowDeflater) greedy(start int) {
	end := len(d.win)
	block := start
	lits := start // literals since here may become part of a match
	for i := start; i < end; {
		if len(d.toks) == lzBlockToks {
			d.flush(block, i)
			block, lits = i, i
		}
		var length int
		var dist uint32
		if i+lzMinMatch <= end {
			length, dist = d.findMatch(i, d.insert(i), 0, d.cfg.chain)
		}
		if length == 0 {
			d.literal(d.win[i])
			i++
			continue
		}
		// The history is indexed sparsely: a match may begin before the
		// string that found it.
		for j := i - int(dist); i > lits && j > 0 && length < maxMatch && d.win[i-1] == d.win[j-1]; j-- {
			i--
			length++
			d.toks = d.toks[:len(d.toks)-1]
			d.enc.litFreq[d.win[i]]--
		}
		d.match(length, dist)
		lits = i + length
		if length <= d.cfg.lazy {
			for k := i + 1; k < i+length && k+lzMinMatch <= end; k++ {
				d.insert(k)
			}
		}
		i += length
	}
	d.flush(block, end)
}

// lazy tokenizes win[start:] emitting a match only if the next position does
// not start a longer one (zlib's deflate_slow).
func (d *WindowDeflater) lazy(start int) {
	end := len(d.win)
	block := start
	prevLen, prevDist, pending := 0, uint32(0), false
	for i := start; i < end; {
		if len(d.toks) >= lzBlockToks-1 {
			at := i
			if pending {
				at = i - 1
			}
			d.flush(block, at)
			block = at
		}
		var length int
		var dist uint32
		if i+lzMinMatch <= end {
			cand := d.insert(i)
			if prevLen < d.cfg.lazy {
				chain := d.cfg.chain
				if prevLen >= d.cfg.good {
					chain >>= 2
				}
				length, dist = d.findMatch(i, cand, prevLen, chain)
			}
		}
		switch {
		case pending && prevLen >= lzMinMatch && length <= prevLen:
			d.match(prevLen, prevDist)
			last := i - 1 + prevLen
			for k := i + 1; k < last && k+lzMinMatch <= end; k++ {
				d.insert(k)
			}
			i, prevLen, pending = last, 0, false
		case pending:
			d.literal(d.win[i-1])
			prevLen, prevDist = length, dist
			i++
		default:
			prevLen, prevDist, pending = length, dist, true
			i++
		}
	}
	if pending {
		d.literal(d.win[end-1])
	}
	d.flush(block, end)
}
