package server_test

// A conformance suite that mirrors the Autobahn|Testsuite fuzzingclient cases
// of sections 1-7, 9 and 10 (12 and 13, permessage-deflate, are in
// deflate_test.go). Each subtest is named after the Autobahn
// case it reproduces (case_6_4_3 is Autobahn's 6.4.3) and sends the same bytes
// over raw TCP to a real megaws echo server. The verdicts are Autobahn's,
// made strict where Autobahn accepts several outcomes: echoed payloads must
// match and nothing else may arrive; a violation must be answered with the
// close code Autobahn expects (megaws always sends one, so a silent drop
// fails here), after which the server closes TCP; invalid UTF-8 must fail the
// connection as soon as the offending byte arrives (section 6.4, "OK" rather
// than "NON-STRICT").

import (
	"bytes"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// abCase is one Autobahn case: name is "case_" and the case number with
// underscores; run drives a fresh, upgraded connection.
type abCase struct {
	name string
	run  func(c *rawConn)
}

// runCases runs each case on its own connection to one shared echo server.
// Cases run in parallel: most of their time is spent in deliberate pauses.
func runCases(t *testing.T, cfg server.Config, cases []abCase) {
	t.Helper()
	_, addr := startServer(t, echo{}, cfg)
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case %s", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr)
			c.handshake("/")
			tc.run(c)
		})
	}
}

// Frame builders, named after Autobahn's vocabulary.
func text(fin bool, p []byte) []byte { return clientFrame(ws.OpText, fin, 0, p) }
func cont(fin bool, p []byte) []byte { return clientFrame(ws.OpContinuation, fin, 0, p) }
func ping(p []byte) []byte           { return clientFrame(ws.OpPing, true, 0, p) }
func pong(p []byte) []byte           { return clientFrame(ws.OpPong, true, 0, p) }
func closeFrame(p []byte) []byte     { return clientFrame(ws.OpClose, true, 0, p) }

var helloWorld = []byte("Hello, world!")

// echoCase sends wire and expects message op with payload back, then closes.
func echoCase(op ws.OpCode, payload, wire []byte, chop int, pause time.Duration) func(*rawConn) {
	return func(c *rawConn) {
		if chop > 0 {
			c.writeChopped(wire, chop, pause)
		} else {
			c.write(wire)
		}
		c.expectMessage(op, payload)
		c.closeNormal()
	}
}

// failCase sends wire (chopped if chop > 0), expects the echoes of the
// messages in before, then a close with code and the end of the connection.
func failCase(code ws.StatusCode, wire []byte, chop int, pause time.Duration, before ...[]byte) func(*rawConn) {
	return func(c *rawConn) {
		if chop > 0 {
			// The server may fail the connection before the last chop.
			_ = c.tryWriteChopped(wire, chop, pause)
		} else {
			c.write(wire)
		}
		for _, m := range before {
			c.expectMessage(ws.OpText, m)
		}
		c.expectCloseNext(code)
	}
}

// Section 1: framing.
func TestAutobahnFraming(t *testing.T) {
	var cases []abCase
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
		txt, bin := bytes.Repeat([]byte("*"), n), bytes.Repeat([]byte{0xfe}, n)
		cases = append(cases,
			abCase{fmt.Sprintf("case_1_1_%d", i+1), echoCase(ws.OpText, txt, text(true, txt), 0, 0)},
			abCase{fmt.Sprintf("case_1_2_%d", i+1), echoCase(ws.OpBinary, bin, clientFrame(ws.OpBinary, true, 0, bin), 0, 0)})
	}
	txt, bin := bytes.Repeat([]byte("*"), 65536), bytes.Repeat([]byte{0xfe}, 65536)
	cases = append(cases,
		abCase{"case_1_1_8", echoCase(ws.OpText, txt, text(true, txt), 997, 0)},
		abCase{"case_1_2_8", echoCase(ws.OpBinary, bin, clientFrame(ws.OpBinary, true, 0, bin), 997, 0)})
	runCases(t, server.Config{}, cases)
}

// Section 2: pings and pongs.
func TestAutobahnPingPong(t *testing.T) {
	bin8 := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	p125, p126 := bytes.Repeat([]byte{0xfe}, 125), bytes.Repeat([]byte{0xfe}, 126)
	pingPong := func(p []byte, chop int) func(*rawConn) {
		return func(c *rawConn) {
			if chop > 0 {
				c.writeChopped(ping(p), chop, 0)
			} else {
				c.write(ping(p))
			}
			c.expectPong(p)
			c.closeNormal()
		}
	}
	unsolicited := []byte("unsolicited pong payload")
	tenPings := func(chop int, pause time.Duration) func(*rawConn) {
		return func(c *rawConn) {
			var wire []byte
			for i := range 10 {
				wire = append(wire, ping([]byte(fmt.Sprintf("payload-%d", i)))...)
			}
			if chop > 0 {
				c.writeChopped(wire, chop, pause)
			} else {
				c.write(wire)
			}
			for i := range 10 {
				c.expectPong([]byte(fmt.Sprintf("payload-%d", i)))
			}
			c.closeNormal()
		}
	}
	runCases(t, server.Config{}, []abCase{
		{"case_2_1", pingPong(nil, 0)},
		{"case_2_2", pingPong(helloWorld, 0)},
		{"case_2_3", pingPong(bin8, 0)},
		{"case_2_4", pingPong(p125, 0)},
		{"case_2_5", failCase(ws.StatusProtocolError, ping(p126), 0, 0)},
		{"case_2_6", pingPong(p125, 1)},
		{"case_2_7", func(c *rawConn) { c.write(pong(nil)); c.closeNormal() }},
		{"case_2_8", func(c *rawConn) { c.write(pong(unsolicited)); c.closeNormal() }},
		{"case_2_9", func(c *rawConn) {
			c.write(concat(pong(unsolicited), ping([]byte("ping payload"))))
			c.expectPong([]byte("ping payload"))
			c.closeNormal()
		}},
		{"case_2_10", tenPings(0, 0)},
		{"case_2_11", tenPings(1, time.Millisecond)},
	})
}

// Section 3: reserved bits.
func TestAutobahnReservedBits(t *testing.T) {
	bin8 := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	msgThenBad := func(rsv byte) []byte {
		return concat(text(true, helloWorld), clientFrame(ws.OpText, true, rsv, helloWorld), ping(helloWorld))
	}
	perFrame := func(frames ...[]byte) func(*rawConn) {
		return func(c *rawConn) {
			for _, f := range frames {
				c.write(f)
			}
			c.expectMessage(ws.OpText, helloWorld)
			c.expectCloseNext(ws.StatusProtocolError)
		}
	}
	runCases(t, server.Config{}, []abCase{
		{"case_3_1", failCase(ws.StatusProtocolError, clientFrame(ws.OpText, true, 1, helloWorld), 0, 0)},
		{"case_3_2", failCase(ws.StatusProtocolError, msgThenBad(2), 0, 0, helloWorld)},
		{"case_3_3", perFrame(text(true, helloWorld), clientFrame(ws.OpText, true, 3, helloWorld), ping(helloWorld))},
		{"case_3_4", failCase(ws.StatusProtocolError, msgThenBad(4), 1, time.Millisecond, helloWorld)},
		{"case_3_5", failCase(ws.StatusProtocolError, clientFrame(ws.OpBinary, true, 5, bin8), 0, 0)},
		{"case_3_6", failCase(ws.StatusProtocolError, clientFrame(ws.OpPing, true, 6, helloWorld), 0, 0)},
		{"case_3_7", failCase(ws.StatusProtocolError, clientFrame(ws.OpClose, true, 7, closePayload(1000, "")), 0, 0)},
	})
}

// Section 4: opcodes.
func TestAutobahnOpcodes(t *testing.T) {
	payload := []byte("reserved opcode payload")
	var cases []abCase
	for i, ops := range [][5]ws.OpCode{{3, 4, 5, 6, 7}, {11, 12, 13, 14, 15}} {
		sec := fmt.Sprintf("case_4_%d_", i+1)
		cases = append(cases,
			abCase{sec + "1", failCase(ws.StatusProtocolError, clientFrame(ops[0], true, 0, nil), 0, 0)},
			abCase{sec + "2", failCase(ws.StatusProtocolError, clientFrame(ops[1], true, 0, payload), 0, 0)},
			abCase{sec + "3", failCase(ws.StatusProtocolError,
				concat(text(true, helloWorld), clientFrame(ops[2], true, 0, nil), ping(helloWorld)), 0, 0, helloWorld)},
			abCase{sec + "4", failCase(ws.StatusProtocolError,
				concat(text(true, helloWorld), clientFrame(ops[3], true, 0, payload), ping(helloWorld)), 0, 0, helloWorld)},
			abCase{sec + "5", failCase(ws.StatusProtocolError,
				concat(text(true, helloWorld), clientFrame(ops[4], true, 0, payload), ping(helloWorld)), 1, time.Millisecond, helloWorld)})
	}
	runCases(t, server.Config{}, cases)
}

// Section 5: fragmentation.
func TestAutobahnFragmentation(t *testing.T) {
	f1, f2 := []byte("fragment1"), []byte("fragment2")
	f12 := []byte("fragment1fragment2")
	twoFrags := concat(text(false, f1), cont(true, f2))
	withPing := concat(text(false, f1), ping([]byte("ping payload")), cont(true, f2))
	pingThenEcho := func(chop int, pause time.Duration) func(*rawConn) {
		return func(c *rawConn) {
			if chop == 0 {
				chop = len(withPing)
			}
			c.writeChopped(withPing, chop, pause)
			c.expectPong([]byte("ping payload"))
			c.expectMessage(ws.OpText, f12)
			c.closeNormal()
		}
	}
	// Cases 5.9-5.14: a continuation frame with nothing to continue, then a
	// whole text message.
	orphan := func(fin bool) [][]byte {
		return [][]byte{cont(fin, []byte("non-continuation payload")), text(true, []byte("Hello, world!"))}
	}
	orphanCases := func(first int, fin bool) []abCase {
		frames := orphan(fin)
		return []abCase{
			{fmt.Sprintf("case_5_%d", first), failCase(ws.StatusProtocolError, concat(frames...), 0, 0)},
			{fmt.Sprintf("case_5_%d", first+1), func(c *rawConn) {
				for _, f := range frames {
					c.write(f)
				}
				c.expectCloseNext(ws.StatusProtocolError)
			}},
			{fmt.Sprintf("case_5_%d", first+2), failCase(ws.StatusProtocolError, concat(frames...), 1, time.Millisecond)},
		}
	}
	// Cases 5.19 and 5.20: five fragments with two pings between them.
	fiveFrags := func(perFrame bool) func(*rawConn) {
		return func(c *rawConn) {
			frag := func(i int) []byte { return []byte(fmt.Sprintf("fragment%d", i)) }
			send := func(frames ...[]byte) {
				if perFrame {
					for _, f := range frames {
						c.write(f)
					}
				} else {
					c.write(concat(frames...))
				}
			}
			send(text(false, frag(1)), cont(false, frag(2)), ping([]byte("pongme 1!")))
			c.expectPong([]byte("pongme 1!"))
			time.Sleep(50 * time.Millisecond)
			send(cont(false, frag(3)), cont(false, frag(4)), ping([]byte("pongme 2!")), cont(true, frag(5)))
			c.expectPong([]byte("pongme 2!"))
			c.expectMessage(ws.OpText, []byte("fragment1fragment2fragment3fragment4fragment5"))
			c.closeNormal()
		}
	}
	cases := []abCase{
		{"case_5_1", failCase(ws.StatusProtocolError, concat(clientFrame(ws.OpPing, false, 0, f1), cont(true, f2)), 0, 0)},
		{"case_5_2", failCase(ws.StatusProtocolError, concat(clientFrame(ws.OpPong, false, 0, f1), cont(true, f2)), 0, 0)},
		{"case_5_3", echoCase(ws.OpText, f12, twoFrags, 0, 0)},
		{"case_5_4", echoCase(ws.OpText, f12, twoFrags, 1, 0)},
		{"case_5_5", echoCase(ws.OpText, f12, twoFrags, 1, time.Millisecond)},
		{"case_5_6", pingThenEcho(0, 0)},
		{"case_5_7", pingThenEcho(1, 0)},
		{"case_5_8", pingThenEcho(1, time.Millisecond)},
	}
	cases = append(cases, orphanCases(9, true)...)
	cases = append(cases, orphanCases(12, false)...)
	cases = append(cases,
		abCase{"case_5_15", failCase(ws.StatusProtocolError,
			concat(text(false, f1), cont(true, f2), cont(false, []byte("fragment3")), text(true, []byte("fragment4"))), 0, 0, f12)},
		abCase{"case_5_16", failCase(ws.StatusProtocolError, concat(
			cont(false, []byte("fragment1")), text(false, []byte("fragment2")), cont(true, []byte("fragment3")),
			cont(false, []byte("fragment1")), text(false, []byte("fragment2")), cont(true, []byte("fragment3"))), 0, 0)},
		abCase{"case_5_17", failCase(ws.StatusProtocolError, concat(
			cont(true, []byte("fragment1")), text(false, []byte("fragment2")), cont(true, []byte("fragment3")),
			cont(true, []byte("fragment1")), text(false, []byte("fragment2")), cont(true, []byte("fragment3"))), 0, 0)},
		abCase{"case_5_18", failCase(ws.StatusProtocolError, concat(text(false, f1), text(true, f2)), 0, 0)},
		abCase{"case_5_19", fiveFrags(false)},
		abCase{"case_5_20", fiveFrags(true)},
	)
	runCases(t, server.Config{}, cases)
}

// Section 6: UTF-8 handling.
func TestAutobahnUTF8(t *testing.T) {
	hello := []byte("Hello-µ@ßöäüàá-UTF-8!!")
	kosme := []byte("κόσμε")
	invalid := append(append([]byte("κόσμε"), 0xed, 0xa0, 0x80), "edited"...) // U+D800, a surrogate
	octetFrames := func(p []byte) []byte {
		var wire []byte
		for i := range p {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			wire = append(wire, clientFrame(op, i == len(p)-1, 0, p[i:i+1])...)
		}
		return wire
	}
	cases := []abCase{
		{"case_6_1_1", echoCase(ws.OpText, nil, text(true, nil), 0, 0)},
		{"case_6_1_2", echoCase(ws.OpText, nil, concat(text(false, nil), cont(false, nil), cont(true, nil)), 0, 0)},
		{"case_6_1_3", echoCase(ws.OpText, []byte("middle frame payload"),
			concat(text(false, nil), cont(false, []byte("middle frame payload")), cont(true, nil)), 0, 0)},
		{"case_6_2_1", echoCase(ws.OpText, hello, text(true, hello), 0, 0)},
		{"case_6_2_2", echoCase(ws.OpText, hello, concat(text(false, hello[:11]), cont(true, hello[11:])), 0, 0)},
		{"case_6_2_3", echoCase(ws.OpText, hello, octetFrames(hello), 0, 0)},
		{"case_6_2_4", echoCase(ws.OpText, kosme, octetFrames(kosme), 0, 0)},
		{"case_6_3_1", failCase(ws.StatusInvalidFramePayloadData, text(true, invalid), 0, 0)},
		{"case_6_3_2", failCase(ws.StatusInvalidFramePayloadData, octetFrames(invalid), 0, 0)},
	}
	if !utf8.Valid(hello[:11]) {
		t.Fatal("case 6.2.2 must split on a code point boundary")
	}

	// 6.4.x: the message becomes invalid in its second part; the server must
	// fail the connection then, before the third part is sent.
	p1 := []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5}
	p2 := []byte{0xf4, 0x90, 0x80, 0x80} // 0x110000, beyond Unicode
	whole := concat(p1, p2, []byte("edited"))
	frames := func(a, b []byte) func(*rawConn) {
		return func(c *rawConn) {
			c.write(text(false, a))
			// The connection is still open: a ping is answered.
			c.write(ping([]byte("still open")))
			c.expectPong([]byte("still open"))
			c.write(cont(false, b))
			c.expectCloseNext(ws.StatusInvalidFramePayloadData)
		}
	}
	chops := func(a, b []byte) func(*rawConn) {
		return func(c *rawConn) {
			wire := text(true, whole)
			hdr := len(wire) - len(whole)
			c.write(wire[:hdr+len(a)])
			c.expectQuiet(100 * time.Millisecond)
			c.write(wire[hdr+len(a) : hdr+len(a)+len(b)])
			c.expectCloseNext(ws.StatusInvalidFramePayloadData)
		}
	}
	cases = append(cases,
		abCase{"case_6_4_1", frames(p1, p2)},
		abCase{"case_6_4_2", frames(whole[:12], whole[12:13])},
		abCase{"case_6_4_3", chops(p1, p2)},
		abCase{"case_6_4_4", chops(whole[:12], whole[12:13])},
	)

	// 6.5-6.23: Markus Kuhn's UTF-8 decoder test sequences, one message each.
	for i, cat := range utf8Sequences() {
		for j, seq := range cat {
			name := fmt.Sprintf("case_6_%d_%d", i+5, j+1)
			if seq.valid {
				cases = append(cases, abCase{name, echoCase(ws.OpText, seq.b, text(true, seq.b), 0, 0)})
			} else {
				cases = append(cases, abCase{name, failCase(ws.StatusInvalidFramePayloadData, text(true, seq.b), 0, 0)})
			}
		}
	}
	runCases(t, server.Config{}, cases)
}

type utf8Seq struct {
	valid bool
	b     []byte
}

// utf8Sequences returns Autobahn's UTF-8 test categories 6.5 to 6.23, in
// Autobahn's order, each a list of sequences with the verdict Autobahn
// expects. They come from Markus Kuhn's "UTF-8 decoder capability and stress
// test".
func utf8Sequences() [][]utf8Seq {
	ok := func(s ...string) []utf8Seq {
		var v []utf8Seq
		for _, x := range s {
			v = append(v, utf8Seq{true, []byte(x)})
		}
		return v
	}
	bad := func(s ...string) []utf8Seq {
		var v []utf8Seq
		for _, x := range s {
			v = append(v, utf8Seq{false, []byte(x)})
		}
		return v
	}
	vss := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	var prefixes []utf8Seq
	for i := 1; i <= len(vss); i++ {
		// A prefix of valid UTF-8 is valid exactly when it ends on a code point.
		prefixes = append(prefixes, utf8Seq{utf8.ValidString(vss[:i]), []byte(vss[:i])})
	}
	var cont80 []byte
	for c := 0x80; c < 0xbf; c++ {
		cont80 = append(cont80, byte(c))
	}
	var lonely []utf8Seq
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s []byte
		for c := r[0]; c < r[1]; c++ {
			s = append(s, byte(c), 0x20)
		}
		lonely = append(lonely, utf8Seq{false, s})
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var concatMissing string
	for _, s := range missing {
		concatMissing += s
	}
	nonChars := ok("\xef\xbf\xbe", "\xef\xbf\xbf")
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // beyond U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				if z1 == 0xf0 && z2 == 0x8f {
					continue // overlong
				}
				nonChars = append(nonChars, utf8Seq{true, []byte{z1, z2, 0xbf, z3}})
			}
		}
	}
	return [][]utf8Seq{
		ok("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", vss), // 6.5
		prefixes, // 6.6
		ok("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"),                                                 // 6.7
		bad("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"),                                                    // 6.8
		ok("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"),                                                 // 6.9
		bad("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"),                                // 6.10
		append(ok("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), bad("\xf4\x90\x80\x80")...), // 6.11
		append(bad("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80",
			"\x80\xbf\x80\xbf\x80\xbf"), utf8Seq{false, cont80}), // 6.12
		lonely,                                  // 6.13
		bad(missing...),                         // 6.14
		bad(concatMissing),                      // 6.15
		bad("\xfe", "\xff", "\xfe\xfe\xff\xff"), // 6.16
		bad("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"),             // 6.17
		bad("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"),             // 6.18
		bad("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"),             // 6.19
		bad("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"), // 6.20
		bad("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"), // 6.21
		nonChars, // 6.22
		ok("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"), // 6.23
	}
}

// Section 7: close handling.
func TestAutobahnClose(t *testing.T) {
	closeWith := func(code ws.StatusCode, reason string) []byte { return closeFrame(closePayload(code, reason)) }
	normal := closeWith(1000, "")
	cases := []abCase{
		{"case_7_1_1", func(c *rawConn) {
			c.write(concat(text(true, []byte("Hello World!")), normal))
			c.expectMessage(ws.OpText, []byte("Hello World!"))
			c.expectCloseNext(1000)
		}},
		{"case_7_1_2", func(c *rawConn) { c.write(concat(normal, normal)); c.expectCloseNext(1000) }},
		{"case_7_1_3", func(c *rawConn) { c.write(concat(normal, ping(nil))); c.expectCloseNext(1000) }},
		{"case_7_1_4", func(c *rawConn) { c.write(concat(normal, text(true, []byte("Hello World!")))); c.expectCloseNext(1000) }},
		{"case_7_1_5", func(c *rawConn) {
			c.write(concat(text(false, []byte("fragment1")), normal, cont(true, []byte("fragment2"))))
			c.expectCloseNext(1000)
		}},
		{"case_7_1_6", func(c *rawConn) {
			big := bytes.Repeat([]byte("BAsd7&jh23"), 256<<10/10)
			c.write(concat(text(true, big), text(true, []byte("Hello World!")), normal, ping(nil)))
			// Informational in Autobahn; megaws handles frames in order.
			c.expectMessage(ws.OpText, big)
			c.expectMessage(ws.OpText, []byte("Hello World!"))
			c.expectCloseNext(1000)
		}},
		{"case_7_3_1", func(c *rawConn) { c.write(closeFrame(nil)); c.expectCloseNext(ws.StatusNoStatusRcvd) }},
		{"case_7_3_2", failCase(ws.StatusProtocolError, closeFrame([]byte{0x03}), 0, 0)},
		{"case_7_3_3", func(c *rawConn) { c.write(normal); c.expectCloseNext(1000) }},
		{"case_7_3_4", func(c *rawConn) { c.write(closeWith(1000, "Hello World!")); c.expectCloseNext(1000) }},
		{"case_7_3_5", func(c *rawConn) {
			c.write(closeWith(1000, string(bytes.Repeat([]byte("*"), 123))))
			c.expectCloseNext(1000)
		}},
		{"case_7_3_6", failCase(ws.StatusProtocolError, closeWith(1000, string(bytes.Repeat([]byte("*"), 124))), 0, 0)},
		{"case_7_5_1", failCase(ws.StatusInvalidFramePayloadData,
			closeFrame(append(closePayload(1000, ""), 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
				0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64)), 0, 0)},
	}
	for i, code := range []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cases = append(cases, abCase{fmt.Sprintf("case_7_7_%d", i+1), func(c *rawConn) {
			c.write(closeWith(code, ""))
			c.expectCloseNext(code)
		}})
	}
	for i, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cases = append(cases, abCase{fmt.Sprintf("case_7_9_%d", i+1), failCase(ws.StatusProtocolError, closeWith(code, ""), 0, 0)})
	}
	// 7.13.x are informational in Autobahn (1000, the code itself or 1002
	// are all accepted); megaws refuses codes outside the registry.
	cases = append(cases,
		abCase{"case_7_13_1", failCase(ws.StatusProtocolError, closeWith(5000, ""), 0, 0)},
		abCase{"case_7_13_2", failCase(ws.StatusProtocolError, closeWith(65535, ""), 0, 0)})
	runCases(t, server.Config{}, cases)
}

// Section 9: limits and performance, within the default Config (16 MiB
// messages, 4 MiB write queue). Cases run one after another on one server:
// each moves up to 32 MiB.
func TestAutobahnLimits(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{})
	textPayload := func(n int) []byte { return bytes.Repeat([]byte("BAsd7&jh23"), n/10+1)[:n] }
	binPayload := func(n int) []byte {
		b := make([]byte, n)
		x := uint32(2463534242)
		for i := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[i] = byte(x)
		}
		return b
	}
	run := func(name string, fn func(c *rawConn)) {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr)
			_ = c.SetDeadline(time.Now().Add(3 * ioTimeout))
			c.handshake("/")
			fn(c)
			c.closeNormal()
		})
	}
	kinds := []struct {
		op      ws.OpCode
		payload func(int) []byte
	}{{ws.OpText, textPayload}, {ws.OpBinary, binPayload}}

	// 9.1.x, 9.2.x: one message of 64 KiB to 16 MiB.
	for k, kind := range kinds {
		for i, n := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20} {
			run(fmt.Sprintf("case_9_%d_%d", k+1, i+1), func(c *rawConn) {
				p := kind.payload(n)
				c.write(clientFrame(kind.op, true, 0, p))
				c.expectMessage(kind.op, p)
			})
		}
	}
	// 9.3.x, 9.4.x: a 4 MiB message in fragments of 64 B to 4 MiB.
	for k, kind := range kinds {
		p := kind.payload(4 << 20)
		for i, frag := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
			run(fmt.Sprintf("case_9_%d_%d", k+3, i+1), func(c *rawConn) {
				c.write(fragmented(kind.op, p, frag))
				c.expectMessage(kind.op, p)
			})
		}
	}
	// 9.5.x, 9.6.x: a 1 MiB message written in chops of 64 B to 2 KiB.
	for k, kind := range kinds {
		p := kind.payload(1 << 20)
		wire := clientFrame(kind.op, true, 0, p)
		for i, chop := range []int{64, 128, 256, 512, 1024, 2048} {
			run(fmt.Sprintf("case_9_%d_%d", k+5, i+1), func(c *rawConn) {
				c.writeChopped(wire, chop, 0)
				c.expectMessage(kind.op, p)
			})
		}
	}
	// 9.7.x, 9.8.x: 1,000 round trips of 0 B to 4 KiB messages.
	for k, kind := range kinds {
		for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
			run(fmt.Sprintf("case_9_%d_%d", k+7, i+1), func(c *rawConn) {
				p := kind.payload(n)
				wire := clientFrame(kind.op, true, 0, p)
				for range 1000 {
					c.write(wire)
					c.expectMessage(kind.op, p)
				}
			})
		}
	}
}

// fragmented returns a message of opcode op split into frames of frag bytes.
func fragmented(op ws.OpCode, p []byte, frag int) []byte {
	var wire []byte
	for i := 0; i < len(p) || i == 0; i += frag {
		end := min(i+frag, len(p))
		fop := ws.OpContinuation
		if i == 0 {
			fop = op
		}
		wire = append(wire, clientFrame(fop, end == len(p), 0, p[i:end])...)
	}
	return wire
}

// Section 10: miscellaneous.
func TestAutobahnMisc(t *testing.T) {
	p := bytes.Repeat([]byte("*"), 65536)
	runCases(t, server.Config{}, []abCase{
		// 10.1.1: a 64 KiB message auto-fragmented into 1,300-byte frames.
		{"case_10_1_1", echoCase(ws.OpText, p, fragmented(ws.OpText, p, 1300), 0, 0)},
	})
}
