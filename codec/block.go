package codec

// A token is one LZ77 decision: a literal byte (below tokenMatch) or a
// back-reference, tokenMatch | (length-3)<<16 | distance.
const tokenMatch = 1 << 31

func matchToken(length int, dist uint32) uint32 {
	return tokenMatch | uint32(length-3)<<16 | dist
}

// blockEncoder writes the tokens of a block as whichever of a stored, a
// fixed-Huffman or a dynamic-Huffman block (RFC 1951 §3.2.4-§3.2.7) is the
// smallest, never with BFINAL set: a permessage-deflate stream with context
// takeover goes on after every message.
type blockEncoder struct {
	w        bitWriter
	litFreq  [numLitLen]uint32
	distFreq [numDist]uint32

	litLens   [numLitLen]uint8
	litCodes  [numLitLen]uint16
	distLens  [numDist]uint8
	distCodes [numDist]uint16
	clFreq    [numCodeLen]uint32
	clLens    [numCodeLen]uint8
	clCodes   [numCodeLen]uint16
	rle       [numLitLen + numDist]uint16 // code length symbol | repeat extra<<8
	nrle      int
	hb        huffBuilder
}

// countLiteral and countMatch keep the symbol frequencies of the block being
// built.
func (e *blockEncoder) countLiteral(b byte) { e.litFreq[b]++ }

func (e *blockEncoder) countMatch(length int, dist uint32) {
	e.litFreq[257+int(lengthCode[length-3])]++
	e.distFreq[distCode(dist)]++
}

// writeBlock writes toks, whose uncompressed bytes are raw, as one block (or
// as several stored blocks if raw is longer than 65,535 bytes), and clears
// the frequencies for the next block.
func (e *blockEncoder) writeBlock(toks []uint32, raw []byte) {
	if len(raw) == 0 {
		return
	}
	e.litFreq[endOfBlock] = 1
	extra := 0
	for c, n := range e.litFreq[257:] {
		extra += int(n) * int(lengthExtra[c])
	}
	fixed, dyn := 3+extra, 3+extra
	for c, n := range e.distFreq {
		extra := int(n) * int(distExtra[c])
		fixed += extra + int(n)*5
		dyn += extra
	}
	for s, n := range e.litFreq {
		fixed += int(n) * int(fixedLit.lens[s])
	}
	pad := (8 - (int(e.w.nbits)+3)%8) % 8
	stored := 3 + pad + 32 + 8*len(raw) + (len(raw)-1)/maxStoredLen*40

	dyn += e.hb.build(e.litFreq[:], e.litLens[:], e.litCodes[:], maxCodeBits)
	dyn += e.hb.build(e.distFreq[:], e.distLens[:], e.distCodes[:], maxCodeBits)
	hlit, hdist, hclen, hbits := e.codeLengths()
	dyn += hbits

	switch {
	case stored <= fixed && stored <= dyn:
		e.writeStored(raw)
	case fixed <= dyn:
		e.w.write(1<<1, 3)
		e.writeTokens(toks, fixedLit, fixedDist)
	default:
		e.w.write(2<<1, 3)
		e.w.write(uint64(hlit-257)|uint64(hdist-1)<<5|uint64(hclen-4)<<10, 14)
		for _, s := range codeLenOrder[:hclen] {
			e.w.write(uint64(e.clLens[s]), 3)
		}
		for _, r := range e.rle[:e.nrle] {
			s := r & 0xff
			nb := uint(e.clLens[s])
			switch s {
			case 16:
				nb += 2
			case 17:
				nb += 3
			case 18:
				nb += 7
			}
			e.w.write(uint64(e.clCodes[s])|uint64(r>>8)<<e.clLens[s], nb)
		}
		e.writeTokens(toks, huffCode{e.litLens[:], e.litCodes[:]}, huffCode{e.distLens[:], e.distCodes[:]})
	}
	clear(e.litFreq[:])
	clear(e.distFreq[:])
}

// codeLengths run-length encodes the literal/length and distance code
// lengths with the code length alphabet (RFC 1951 §3.2.7) into e.rle, builds
// the code length code, and returns HLIT, HDIST, HCLEN and the size of the
// dynamic block header in bits.
func (e *blockEncoder) codeLengths() (hlit, hdist, hclen, size int) {
	hlit = numLitLen
	for hlit > 257 && e.litLens[hlit-1] == 0 {
		hlit--
	}
	hdist = numDist
	for hdist > 1 && e.distLens[hdist-1] == 0 {
		hdist--
	}
	clear(e.clFreq[:])
	e.nrle = 0
	emit := func(sym, extra uint16) {
		e.rle[e.nrle] = sym | extra<<8
		e.nrle++
		e.clFreq[sym]++
	}
	n := hlit + hdist
	at := func(i int) uint8 {
		if i < hlit {
			return e.litLens[i]
		}
		return e.distLens[i-hlit]
	}
	for i := 0; i < n; {
		v := at(i)
		run := 1
		for i+run < n && at(i+run) == v {
			run++
		}
		i += run
		if v == 0 {
			for run >= 11 {
				k := min(run, 138)
				emit(18, uint16(k-11))
				run -= k
			}
			if run >= 3 {
				emit(17, uint16(run-3))
				run = 0
			}
		} else {
			emit(uint16(v), 0)
			run--
			for run >= 3 {
				k := min(run, 6)
				emit(16, uint16(k-3))
				run -= k
			}
		}
		for ; run > 0; run-- {
			emit(uint16(v), 0)
		}
	}
	size = e.hb.build(e.clFreq[:], e.clLens[:], e.clCodes[:], maxCLBits)
	hclen = numCodeLen
	for hclen > 4 && e.clLens[codeLenOrder[hclen-1]] == 0 {
		hclen--
	}
	size += 14 + 3*hclen + 2*int(e.clFreq[16]) + 3*int(e.clFreq[17]) + 7*int(e.clFreq[18])
	return hlit, hdist, hclen, size
}

// writeTokens writes toks with the given codes, then the end of block.
func (e *blockEncoder) writeTokens(toks []uint32, lit, dist huffCode) {
	w := e.w
	for _, t := range toks {
		if t < tokenMatch {
			w.write(uint64(lit.codes[t]), uint(lit.lens[t]))
			continue
		}
		l := t >> 16 & 0xff
		lc := uint32(lengthCode[l]) + 257
		w.write(uint64(lit.codes[lc])|uint64(l+3-uint32(lengthBase[lc-257]))<<lit.lens[lc], uint(lit.lens[lc])+uint(lengthExtra[lc-257]))
		d := t & 0xffff
		dc := distCode(d)
		w.write(uint64(dist.codes[dc])|uint64(d-uint32(distBase[dc]))<<dist.lens[dc], uint(dist.lens[dc])+uint(distExtra[dc]))
	}
	w.write(uint64(lit.codes[endOfBlock]), uint(lit.lens[endOfBlock]))
	e.w = w
}

// writeStored writes raw as stored blocks of at most 65,535 bytes.
func (e *blockEncoder) writeStored(raw []byte) {
	for len(raw) > 0 {
		n := min(len(raw), maxStoredLen)
		e.w.write(0, 3)
		e.w.align()
		e.w.out = append(e.w.out, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		e.w.out = append(e.w.out, raw[:n]...)
		raw = raw[n:]
	}
}

// syncFlush ends a message as RFC 7692 §7.2.1 asks: an empty stored block
// brings the stream to a byte boundary, and its LEN/NLEN bytes
// 0x00 0x00 0xff 0xff, which the receiver appends again, are left out.
func (e *blockEncoder) syncFlush() {
	e.w.write(0, 3)
	e.w.align()
}
