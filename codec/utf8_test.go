package codec

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"unicode/utf8"
)

// utf8Cases are valid and invalid texts in the spirit of Autobahn section 6,
// with the offset of the first byte that makes the text invalid (-1 when the
// text is valid or only truncated) and whether it is complete valid UTF-8.
var utf8Cases = []struct {
	name   string
	text   string
	failAt int
	valid  bool
}{
	{name: "empty", text: "", failAt: -1, valid: true},
	{name: "ascii", text: "Hello, megaws! 0123456789 ~\x7f\x00", failAt: -1, valid: true},
	{name: "kosme", text: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", failAt: -1, valid: true},
	{name: "mixed", text: "héllo wörld € 😀 漢字 ✓", failAt: -1, valid: true},
	{name: "U+0080", text: "\xc2\x80", failAt: -1, valid: true},
	{name: "U+07FF", text: "\xdf\xbf", failAt: -1, valid: true},
	{name: "U+0800", text: "\xe0\xa0\x80", failAt: -1, valid: true},
	{name: "U+D7FF", text: "\xed\x9f\xbf", failAt: -1, valid: true},
	{name: "U+E000", text: "\xee\x80\x80", failAt: -1, valid: true},
	{name: "U+FFFD", text: "\xef\xbf\xbd", failAt: -1, valid: true},
	{name: "U+FFFE noncharacter", text: "\xef\xbf\xbe", failAt: -1, valid: true},
	{name: "U+FFFF", text: "\xef\xbf\xbf", failAt: -1, valid: true},
	{name: "U+10000", text: "\xf0\x90\x80\x80", failAt: -1, valid: true},
	{name: "U+10FFFF", text: "\xf4\x8f\xbf\xbf", failAt: -1, valid: true},
	{name: "ascii run then 4-byte", text: "0123456789abcdef\xf0\x9f\x98\x80", failAt: -1, valid: true},

	{name: "truncated 2-byte", text: "ab\xc3", failAt: -1},
	{name: "truncated 3-byte", text: "\xe2\x82", failAt: -1},
	{name: "truncated 4-byte", text: "x\xf0\x9f\x98", failAt: -1},
	{name: "truncated lead only", text: "\xf4", failAt: -1},

	{name: "lone continuation", text: "\x80", failAt: 0},
	{name: "continuation after ascii", text: "abc\xbf", failAt: 3},
	{name: "C0 overlong", text: "\xc0\x80", failAt: 0},
	{name: "C1 overlong", text: "\xc1\xbf", failAt: 0},
	{name: "E0 overlong", text: "\xe0\x80\x80", failAt: 1},
	{name: "E0 9F overlong", text: "\xe0\x9f\xbf", failAt: 1},
	{name: "F0 overlong", text: "\xf0\x80\x80\x80", failAt: 1},
	{name: "F0 8F overlong", text: "\xf0\x8f\xbf\xbf", failAt: 1},
	{name: "surrogate U+D800", text: "\xed\xa0\x80", failAt: 1},
	{name: "surrogate U+DBFF", text: "\xed\xaf\xbf", failAt: 1},
	{name: "surrogate U+DC00", text: "\xed\xb0\x80", failAt: 1},
	{name: "surrogate U+DFFF", text: "\xed\xbf\xbf", failAt: 1},
	{name: "surrogate pair", text: "\xed\xa0\x80\xed\xb0\x80", failAt: 1},
	{name: "kosme-edited surrogate", text: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", failAt: 12},
	{name: "above U+10FFFF", text: "\xf4\x90\x80\x80", failAt: 1},
	{name: "kosme-edited above U+10FFFF", text: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited", failAt: 12},
	{name: "F5 lead", text: "\xf5\x80\x80\x80", failAt: 0},
	{name: "F7 lead", text: "\xf7\xbf\xbf\xbf", failAt: 0},
	{name: "5-byte form", text: "\xf8\x88\x80\x80\x80", failAt: 0},
	{name: "6-byte form", text: "\xfc\x84\x80\x80\x80\x80", failAt: 0},
	{name: "FE", text: "a\xfe", failAt: 1},
	{name: "FF", text: "\xff", failAt: 0},
	{name: "2-byte cut by ascii", text: "\xc3A", failAt: 1},
	{name: "3-byte cut by ascii", text: "\xe2\x82A", failAt: 2},
	{name: "4-byte cut by lead", text: "\xf0\x9f\x98\xf0\x9f\x98\x80", failAt: 3},
	{name: "too many continuations", text: "\xc3\xa9\xa9", failAt: 2},
	{name: "valid prefix then error in ascii run", text: "€ 0123456789abcdefghij\x80klmn", failAt: 24},
	{name: "error after eight ascii", text: "abcdefgh\xc0", failAt: 8},
}

// refFailAt is the reference for fail-fast validation, built on unicode/utf8:
// the offset of the first byte at which s stops being a prefix of valid
// UTF-8, or -1 if every prefix of s is.
func refFailAt(s []byte) int {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRune(s[i:])
		if r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		// An invalid or incomplete sequence starts at i: extend it while it
		// is still the start of some valid character.
		k := 1
		for k <= 3 && i+k <= len(s) && isCharPrefix(s[i:i+k]) {
			k++
		}
		if i+k-1 == len(s) {
			return -1 // a valid character cut by the end of s
		}
		return i + k - 1
	}
	return -1
}

// isCharPrefix reports whether p is a prefix of the encoding of one valid
// character: completing it with continuation bytes 0x80 or 0xA0 (which
// together satisfy every second-byte range of RFC 3629) yields one.
func isCharPrefix(p []byte) bool {
	for _, pad := range []byte{0x80, 0xa0} {
		q := append(append([]byte(nil), p...), pad, pad, pad)
		if r, size := utf8.DecodeRune(q); r != utf8.RuneError && size >= len(p) {
			return true
		}
	}
	return false
}

func TestRefFailAt(t *testing.T) {
	for _, tc := range utf8Cases {
		if got := refFailAt([]byte(tc.text)); got != tc.failAt {
			t.Errorf("%s: refFailAt = %d, want %d", tc.name, got, tc.failAt)
		}
		if utf8.ValidString(tc.text) != tc.valid {
			t.Errorf("%s: utf8.Valid = %v, table says %v", tc.name, !tc.valid, tc.valid)
		}
	}
}

// feedChunks feeds s to a fresh UTF8 cut at cuts and checks fail-fast
// behaviour against failAt: every chunk that ends before the bad byte is
// accepted, the chunk holding it is refused, and so is everything after.
func feedChunks(t *testing.T, s []byte, cuts []int, failAt int, valid bool) {
	t.Helper()
	var v UTF8
	prev := 0
	failed := false
	for _, end := range append(cuts, len(s)) {
		ok := v.Feed(s[prev:end])
		wantOK := failAt < 0 || end <= failAt
		if prev == end && failAt >= 0 && prev > failAt {
			wantOK = false // an empty chunk after the failure
		}
		if ok != wantOK {
			t.Fatalf("chunk [%d:%d] of %s: Feed = %v, want %v (first bad byte at %d)", prev, end, short(s, cuts), ok, wantOK, failAt)
		}
		failed = failed || !ok
		prev = end
	}
	if failed {
		for _, more := range []string{"", "a", "\x80", "\x80\x80\x80", string(bytes.Repeat([]byte{0x80}, 300))} {
			if v.Feed([]byte(more)) {
				t.Fatalf("%s: Feed(%.8q) after a failure = true", short(s, cuts), more)
			}
		}
	}
	if v.Complete() != valid {
		t.Fatalf("%s: Complete = %v, want %v", short(s, cuts), v.Complete(), valid)
	}
}

// short describes a text and its cuts for a failure message.
func short(s []byte, cuts []int) string {
	if len(s) > 64 || len(cuts) > 16 {
		return fmt.Sprintf("%d-byte text in %d chunks", len(s), len(cuts)+1)
	}
	return fmt.Sprintf("%q cut at %v", s, cuts)
}

// TestUTF8Splits feeds every table text split at every byte boundary, at every
// pair of boundaries, and byte by byte.
func TestUTF8Splits(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			s := []byte(tc.text)
			feedChunks(t, s, nil, tc.failAt, tc.valid)
			for i := 0; i <= len(s); i++ {
				for j := i; j <= len(s); j++ {
					feedChunks(t, s, []int{i, j}, tc.failAt, tc.valid)
				}
			}
			each := make([]int, len(s))
			for i := range each {
				each[i] = i
			}
			feedChunks(t, s, each, tc.failAt, tc.valid)
		})
	}
}

// TestUTF8LongText validates long texts in random chunks, valid and with one
// invalid sequence of the table planted at a random offset.
func TestUTF8LongText(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	base := textPayload(64 << 10)
	for round := 0; round < 200; round++ {
		s := append([]byte(nil), base...)
		if round%2 == 1 {
			bad := utf8Cases[rng.Intn(len(utf8Cases))]
			at := rng.Intn(len(s))
			for at > 0 && !utf8.RuneStart(s[at]) {
				at--
			}
			s = append(s[:at], append([]byte(bad.text), s[at:]...)...)
		}
		var cuts []int
		maxChunk := []int{3, 17, 1000, 70000}[round%4]
		for c := rng.Intn(maxChunk) + 1; c < len(s); c += rng.Intn(maxChunk) + 1 {
			cuts = append(cuts, c)
		}
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			feedChunks(t, s, cuts, refFailAt(s), utf8.Valid(s))
		})
	}
}

func TestUTF8Reset(t *testing.T) {
	var v UTF8
	if v.Feed([]byte("\xc3")) == false || v.Complete() {
		t.Fatal("partial character")
	}
	v.Reset()
	if !v.Complete() || !v.Feed([]byte("ok")) || !v.Complete() {
		t.Fatal("Reset after a partial character")
	}
	if v.Feed([]byte{0xff}) {
		t.Fatal("0xff accepted")
	}
	v.Reset()
	if !v.Feed([]byte("é")) || !v.Complete() {
		t.Fatal("Reset after a failure")
	}
}
