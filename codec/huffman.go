package codec

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// The DEFLATE alphabets and limits of RFC 1951 §3.2.5-§3.2.7.
const (
	numLitLen    = 286 // 0-255 literals, 256 end of block, 257-285 lengths
	numDist      = 30
	numCodeLen   = 19
	endOfBlock   = 256
	maxCodeBits  = 15 // literal/length and distance codes
	maxCLBits    = 7  // code length codes
	maxMatch     = 258
	maxStoredLen = 65535
)

var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [numDist]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [numDist]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// codeLenOrder is the order in which a dynamic block header lists the
	// code length code lengths (RFC 1951 §3.2.7).
	codeLenOrder = [numCodeLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

var (
	lengthCode [maxMatch - 2]uint8 // match length-3 → length code-257
	distCodes  [512]uint8          // zlib's _dist_code: see distCode
	fixedLit   huffCode            // RFC 1951 §3.2.6
	fixedDist  huffCode
)

func init() {
	for c := range lengthBase {
		for l := int(lengthBase[c]); l < int(lengthBase[c])+1<<lengthExtra[c] && l <= maxMatch; l++ {
			lengthCode[l-3] = uint8(c)
		}
	}
	for c := range distBase {
		for d := int(distBase[c]) - 1; d < int(distBase[c])-1+1<<distExtra[c]; d++ {
			if d < 256 {
				distCodes[d] = uint8(c)
			} else {
				distCodes[256+d>>7] = uint8(c)
			}
		}
	}
	var lens [288]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	fixedLit.lens = lens[:]
	fixedLit.codes = make([]uint16, len(lens))
	canonicalCodes(fixedLit.lens, fixedLit.codes)
	fixedDist.lens = make([]uint8, numDist)
	fixedDist.codes = make([]uint16, numDist)
	for i := range fixedDist.lens {
		fixedDist.lens[i] = 5
	}
	canonicalCodes(fixedDist.lens, fixedDist.codes)
}

// distCode returns the distance code of a back-reference dist bytes back.
func distCode(dist uint32) uint32 {
	d := dist - 1
	if d < 256 {
		return uint32(distCodes[d])
	}
	return uint32(distCodes[256+d>>7&255])
}

// huffCode is a prefix code: bit lengths and the codes, bit-reversed so that
// they can be written LSB first (RFC 1951 §3.1.1).
type huffCode struct {
	lens  []uint8
	codes []uint16
}

// canonicalCodes assigns the canonical codes of RFC 1951 §3.2.2 to lens.
func canonicalCodes(lens []uint8, codes []uint16) {
	var count [maxCodeBits + 1]uint16
	for _, l := range lens {
		count[l]++
	}
	assignCodes(lens, codes, &count)
}

// assignCodes assigns the canonical codes to lens, of which count[l] have
// length l.
func assignCodes(lens []uint8, codes []uint16, count *[maxCodeBits + 1]uint16) {
	count[0] = 0
	var next [maxCodeBits + 1]uint16
	code := uint16(0)
	for l := 1; l <= maxCodeBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	codes = codes[:len(lens)]
	for s, l := range lens {
		if l != 0 {
			codes[s] = bits.Reverse16(next[l&15]) >> (16 - l)
			next[l&15]++
		}
	}
}

// huffBuilder holds the scratch space for building length-limited Huffman
// codes without allocating.
type huffBuilder struct {
	sorted [numLitLen]uint32 // freq<<16 | symbol
	tmp    [numLitLen]uint32
	depth  [numLitLen]int32
	bucket [256]uint16
}

// build sets lens to the bit lengths of an optimal prefix code for freq
// limited to maxBits, and codes to its canonical codes, and returns the
// number of bits the symbols counted in freq take with that code. Every
// frequency must be below 2^16. At least two symbols get a code, as zlib
// does, so that every code is complete and any inflater accepts it.
func (hb *huffBuilder) build(freq []uint32, lens []uint8, codes []uint16, maxBits int) int {
	n, most := 0, uint32(0)
	for s, f := range freq {
		if f != 0 {
			hb.tmp[n] = f<<16 | uint32(s)
			n++
			most = max(most, f)
		}
	}
	for s := 0; n < 2; s++ {
		if freq[s] == 0 {
			hb.tmp[n] = 1<<16 | uint32(s) // never written; completes the code
			n++
			most = max(most, 1)
		}
	}
	sorted := hb.sorted[:n]
	if most < uint32(len(hb.bucket)) {
		// Small blocks: one counting sort pass on the frequency.
		clear(hb.bucket[:most+1])
		for _, v := range hb.tmp[:n] {
			hb.bucket[v>>16]++
		}
		at := uint16(0)
		for f, c := range hb.bucket[:most+1] {
			hb.bucket[f] = at
			at += c
		}
		for _, v := range hb.tmp[:n] {
			sorted[hb.bucket[v>>16]] = v
			hb.bucket[v>>16]++
		}
	} else {
		copy(sorted, hb.tmp[:n])
		slices.Sort(sorted)
	}
	a := hb.depth[:n]
	for i, v := range sorted {
		a[i] = int32(v >> 16)
	}
	minimumRedundancy(a)
	var count [maxCodeBits + 1]uint16
	for _, l := range a {
		count[min(int(l), maxBits)]++
	}
	// Lengths above maxBits were clamped; push codes down from shorter
	// lengths until the Kraft sum is exactly one again (miniz's
	// tdefl_huffman_enforce_max_code_size).
	total := 0
	for l := maxBits; l > 0; l-- {
		total += int(count[l]) << (maxBits - l)
	}
	for total != 1<<maxBits {
		count[maxBits]--
		for l := maxBits - 1; l > 0; l-- {
			if count[l] != 0 {
				count[l]--
				count[l+1] += 2
				break
			}
		}
		total--
	}
	clear(lens)
	cost := 0
	j := n
	for l := 1; l <= maxBits; l++ {
		for k := count[l]; k > 0; k-- {
			j--
			s := sorted[j] & 0xffff
			lens[s] = uint8(l)
			cost += int(freq[s]) * l
		}
	}
	assignCodes(lens, codes, &count)
	return cost
}

// minimumRedundancy replaces the ascending weights in a (at least two) by
// the code lengths of an optimal prefix code, in place (Moffat and Katajainen,
// "In-place calculation of minimum-redundancy codes", 1995).
func minimumRedundancy(a []int32) {
	n := len(a)
	a[0] += a[1]
	root, leaf := 0, 2
	for next := 1; next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = int32(next)
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = int32(next)
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	avail, used, depth := 1, 0, int32(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail, depth, used = 2*used, depth+1, 0
	}
}

// bitWriter appends an LSB-first bit stream to out.
type bitWriter struct {
	out   []byte
	bits  uint64
	nbits uint
}

// write appends the low nb bits of b; nb is at most 32.
func (w *bitWriter) write(b uint64, nb uint) {
	w.bits |= b << w.nbits
	w.nbits += nb
	if w.nbits >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.nbits -= 32
	}
}

// align pads the stream with zero bits to a byte boundary and writes out
// every whole byte.
func (w *bitWriter) align() {
	for w.nbits > 0 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.nbits -= min(w.nbits, 8)
	}
	w.bits = 0
}
