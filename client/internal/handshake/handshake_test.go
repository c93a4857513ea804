package handshake

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/megaws/megaws/codec"
)

// TestParseResponseSplit feeds a valid response (with a frame after it) cut
// at every byte boundary: every prefix short of the head needs more, and
// the whole answers the same.
func TestParseResponseSplit(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	resp := codec.AppendUpgradeResponse(nil, []byte(key), "chat", codec.DeflateResponse)
	head := len(resp)
	resp = codec.AppendFrame(resp, 0x1, true, []byte("hi"))
	for i := 0; i < len(resp); i++ {
		r, n, err := ParseResponse(resp[:i])
		if i < head {
			if n != 0 || err != nil {
				t.Fatalf("prefix %d: n %d err %v", i, n, err)
			}
			continue
		}
		if err != nil || n != head || r.Status != 101 {
			t.Fatalf("prefix %d: n %d (head %d) err %v status %d", i, n, head, err, r.Status)
		}
		if err := r.CheckUpgrade([]byte(key)); err != nil {
			t.Fatal(err)
		}
		if p, err := r.CheckProtocol([]string{"x", "chat"}); p != "chat" || err != nil {
			t.Fatalf("protocol %q %v", p, err)
		}
		if string(r.Extensions) != codec.DeflateResponse {
			t.Fatalf("extensions %q", r.Extensions)
		}
	}
}

func TestParseResponseErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{in: "HTTP/1.1 10\r\n\r\n", want: ErrMalformed},
		{in: "HTTP/2 101 OK\r\n\r\n", want: ErrMalformed},
		{in: "HTTP/1.1 101 Switching\r\nno colon\r\n\r\n", want: ErrMalformed},
		{in: "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("a", MaxResponseHead) + "\r\n\r\n", want: ErrHeadTooLarge},
		{in: "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("a", MaxResponseHead), want: ErrHeadTooLarge},
	} {
		if _, _, err := ParseResponse([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%.40q: %v, want %v", tc.in, err, tc.want)
		}
	}
	r, _, err := ParseResponse([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
	var he *Error
	if err != nil || !errors.As(r.CheckUpgrade([]byte("k")), &he) || he.Status != 403 {
		t.Fatalf("403: %v %v", err, he)
	}
}

func TestAppendHeader(t *testing.T) {
	b, err := AppendHeader(nil, http.Header{"Origin": {"https://a.example"}, "Host": {"h"}})
	if err != nil || string(b) != "Origin: https://a.example\r\n" {
		t.Fatalf("%q %v", b, err)
	}
	for _, h := range []http.Header{
		{"sec-websocket-key": {"x"}},
		{"Upgrade": {"x"}},
		{"X-A": {"a\nb"}},
		{"Bad Name": {"x"}},
	} {
		if _, err := AppendHeader(nil, h); err == nil {
			t.Errorf("%v accepted", h)
		}
	}
	req := AppendRequest(nil, "/p?q", "h:1", []byte("KEY"), []byte("X: y\r\n"))
	want := "GET /p?q HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: KEY\r\nSec-WebSocket-Version: 13\r\nX: y\r\n\r\n"
	if string(req) != want {
		t.Fatalf("request %q", req)
	}
}
