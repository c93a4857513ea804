package codec

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// closeCodes are the status codes of RFC 6455 §7.4 and the IANA registry,
// with whether a peer may send them.
var closeCodes = []struct {
	code  ws.StatusCode
	valid bool
}{
	{code: 0, valid: false},
	{code: 999, valid: false},
	{code: 1000, valid: true},
	{code: 1001, valid: true},
	{code: 1002, valid: true},
	{code: 1003, valid: true},
	{code: 1004, valid: false}, // reserved
	{code: 1005, valid: false}, // no status: never on the wire
	{code: 1006, valid: false}, // abnormal closure: never on the wire
	{code: 1007, valid: true},
	{code: 1008, valid: true},
	{code: 1009, valid: true},
	{code: 1010, valid: true},
	{code: 1011, valid: true},
	{code: 1012, valid: true},
	{code: 1013, valid: true},
	{code: 1014, valid: true},
	{code: 1015, valid: false}, // TLS handshake failure: never on the wire
	{code: 1016, valid: false},
	{code: 1100, valid: false},
	{code: 2000, valid: false},
	{code: 2999, valid: false},
	{code: 3000, valid: true},
	{code: 3999, valid: true},
	{code: 4000, valid: true},
	{code: 4999, valid: true},
	{code: 5000, valid: false},
	{code: 65535, valid: false},
}

func TestValidCloseCode(t *testing.T) {
	for _, tc := range closeCodes {
		if got := ValidCloseCode(tc.code); got != tc.valid {
			t.Errorf("ValidCloseCode(%d) = %v, want %v", tc.code, got, tc.valid)
		}
	}
}

func TestParseCloseCodes(t *testing.T) {
	for _, tc := range closeCodes {
		for _, reason := range []string{"", "bye", "€ ok"} {
			payload := append([]byte{byte(tc.code >> 8), byte(tc.code)}, reason...)
			code, got, err := ParseClose(payload)
			if tc.valid {
				if err != nil || code != tc.code || string(got) != reason {
					t.Errorf("ParseClose(%d %q) = %d, %q, %v", tc.code, reason, code, got, err)
				}
				continue
			}
			if err != ErrCloseCode || CloseCode(err) != ws.StatusProtocolError {
				t.Errorf("ParseClose(%d %q): err %v, want ErrCloseCode (1002)", tc.code, reason, err)
			}
		}
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		payload  []byte
		code     ws.StatusCode
		reason   string
		err      error
		wantCode ws.StatusCode // CloseCode(err)
	}{
		{name: "empty", payload: nil, code: ws.StatusNoStatusRcvd, wantCode: ws.StatusNormalClosure},
		{name: "one byte", payload: []byte{0x03}, err: ErrCloseLength, wantCode: ws.StatusProtocolError},
		{name: "code only", payload: []byte{0x03, 0xe8}, code: 1000, wantCode: ws.StatusNormalClosure},
		{name: "reason", payload: []byte("\x0f\xa0game over"), code: 4000, reason: "game over", wantCode: ws.StatusNormalClosure},
		{name: "123-byte reason", payload: append([]byte{0x03, 0xe9}, strings.Repeat("r", 123)...), code: 1001, reason: strings.Repeat("r", 123), wantCode: ws.StatusNormalClosure},
		{name: "multi-byte reason", payload: []byte("\x03\xe8κόσμε 😀"), code: 1000, reason: "κόσμε 😀", wantCode: ws.StatusNormalClosure},
		{name: "invalid UTF-8 reason", payload: []byte("\x03\xe8bad \xff"), code: 1000, err: ErrCloseReasonUTF8, wantCode: ws.StatusInvalidFramePayloadData},
		{name: "surrogate in reason", payload: []byte("\x03\xe8\xed\xa0\x80"), code: 1000, err: ErrCloseReasonUTF8, wantCode: ws.StatusInvalidFramePayloadData},
		{name: "truncated reason", payload: []byte("\x03\xe8ok \xe2\x82"), code: 1000, err: ErrCloseReasonUTF8, wantCode: ws.StatusInvalidFramePayloadData},
		{name: "invalid code and reason", payload: []byte("\x03\xed\xff"), code: 1005, err: ErrCloseCode, wantCode: ws.StatusProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, err := ParseClose(tc.payload)
			if err != tc.err || string(reason) != tc.reason || (err == nil || err == ErrCloseCode || err == ErrCloseReasonUTF8) && code != tc.code {
				t.Fatalf("ParseClose = %d, %q, %v; want %d, %q, %v", code, reason, err, tc.code, tc.reason, tc.err)
			}
			if CloseCode(err) != tc.wantCode {
				t.Fatalf("CloseCode = %d, want %d", CloseCode(err), tc.wantCode)
			}
			if len(reason) > 0 && &reason[0] != &tc.payload[2] {
				t.Fatal("reason does not alias the payload")
			}
		})
	}
}

func TestAppendClose(t *testing.T) {
	long := strings.Repeat("a", 200)
	for _, tc := range []struct {
		name   string
		code   ws.StatusCode
		reason string
		want   []byte // whole frame
	}{
		{name: "zero code", code: 0, reason: "ignored", want: []byte{0x88, 0x00}},
		{name: "no status", code: ws.StatusNoStatusRcvd, want: []byte{0x88, 0x00}},
		{name: "normal", code: ws.StatusNormalClosure, want: []byte{0x88, 0x02, 0x03, 0xe8}},
		{name: "protocol error", code: ws.StatusProtocolError, want: []byte{0x88, 0x02, 0x03, 0xea}},
		{name: "reason", code: 4000, reason: "bye", want: []byte("\x88\x05\x0f\xa0bye")},
		{name: "123 bytes fit", code: 1001, reason: long[:123], want: append([]byte{0x88, 125, 0x03, 0xe9}, long[:123]...)},
		{name: "124 bytes truncated", code: 1001, reason: long[:124], want: append([]byte{0x88, 125, 0x03, 0xe9}, long[:123]...)},
		{name: "200 bytes truncated", code: 1011, reason: long, want: append([]byte{0x88, 125, 0x03, 0xf3}, long[:123]...)},
		// 122 ASCII bytes then "é" (2 bytes): byte 123 is the middle of é.
		{name: "cut inside 2-byte", code: 1000, reason: long[:122] + "é", want: append([]byte{0x88, 124, 0x03, 0xe8}, long[:122]...)},
		// 121 + "€" (3 bytes) = 124: the € is dropped whole.
		{name: "cut inside 3-byte", code: 1000, reason: long[:121] + "€", want: append([]byte{0x88, 123, 0x03, 0xe8}, long[:121]...)},
		// 120 + "😀" (4 bytes) = 124.
		{name: "cut inside 4-byte", code: 1000, reason: long[:120] + "😀x", want: append([]byte{0x88, 122, 0x03, 0xe8}, long[:120]...)},
		// 119 + "😀" = 123 fits exactly.
		{name: "4-byte ends at the limit", code: 1000, reason: long[:119] + "😀tail", want: append([]byte{0x88, 125, 0x03, 0xe8}, long[:119]+"😀"...)},
		{name: "all 2-byte", code: 1000, reason: strings.Repeat("é", 100), want: append([]byte{0x88, 124, 0x03, 0xe8}, strings.Repeat("é", 61)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendClose([]byte("dst"), tc.code, tc.reason)
			if !bytes.Equal(got[:3], []byte("dst")) || !bytes.Equal(got[3:], tc.want) {
				t.Fatalf("AppendClose =\n% x\nwant\n% x", got[3:], tc.want)
			}
			f := got[3:]
			h, n, err := DecodeHeader(f)
			if err != nil || n != 2 || CheckServerHeader(h, 0, false) != nil || int(h.Length) != len(f)-2 {
				t.Fatalf("close frame header %+v, %d, %v", h, n, err)
			}
			code, reason, err := ParseClose(f[2:])
			if err != nil && tc.code != 0 {
				t.Fatalf("ParseClose of our own close frame: %v", err)
			}
			if len(f) > 2 && (code != tc.code || !utf8.Valid(reason) || !strings.HasPrefix(tc.reason, string(reason))) {
				t.Fatalf("ParseClose = %d, %q", code, reason)
			}
		})
	}
}
