package server_test

// Hostile handshakes: every malformed or unwelcome opening request gets the
// HTTP status RFC 6455 §4.2 (and RFC 9110/9112) asks for, or a closed
// connection where no HTTP answer makes sense; never 101, never a panic. A
// healthy WebSocket connection opened before the attacks keeps echoing
// through all of them, and the server keeps accepting new ones.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

const (
	validKey  = "dGhlIHNhbXBsZSBub25jZQ=="
	hostLine  = "Host: 127.0.0.1\r\n"
	upgLine   = "Upgrade: websocket\r\n"
	connLine  = "Connection: Upgrade\r\n"
	keyLine   = "Sec-WebSocket-Key: " + validKey + "\r\n"
	verLine   = "Sec-WebSocket-Version: 13\r\n"
	getLine   = "GET /chat HTTP/1.1\r\n"
	endOfHead = "\r\n"
)

// req builds a request head from its lines.
func req(lines ...string) string { return strings.Join(lines, "") + endOfHead }

// answer is what the server said to one hostile request: an HTTP response,
// or nothing before it closed the connection.
type answer struct {
	resp   *http.Response
	closed bool // closed without any response
}

func (a answer) String() string {
	if a.resp == nil {
		return "closed without a response"
	}
	return a.resp.Status
}

// attack sends raw bytes on a new connection and reads the server's answer;
// the server must close the connection after it.
func attack(t *testing.T, addr string, raw []byte) answer {
	t.Helper()
	c := dialRaw(t, addr)
	// The server may answer (and close) before it has read everything.
	_, _ = c.Conn.Write(raw)
	if _, err := c.br.Peek(1); err != nil {
		if err == io.EOF || isReset(err) {
			return answer{closed: true}
		}
		t.Fatalf("waiting for an answer: %v", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("hostile request upgraded: %q", truncate(raw))
	}
	c.expectEOF()
	return answer{resp: resp}
}

// hostileServer starts a recording echo server and a healthy connection that
// must keep working during and after the attacks.
func hostileServer(t *testing.T, cfg server.Config) (*server.Server, string, *recorder, *rawConn) {
	t.Helper()
	rec := newRecorder()
	s, addr := startServer(t, rec, cfg)
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	checkEcho(t, healthy, "before")
	return s, addr, rec, healthy
}

// stillServing checks that the healthy connection echoes, that a new client
// can still upgrade, and that no hostile request reached OnOpen.
func stillServing(t *testing.T, addr string, rec *recorder, healthy *rawConn, opensBefore int) {
	t.Helper()
	checkEcho(t, healthy, "after "+t.Name())
	if opens, _ := rec.counts(); opens != opensBefore {
		t.Fatalf("OnOpen called %d times during the attack", opens-opensBefore)
	}
	c := dialRaw(t, addr)
	c.handshake("/")
	checkEcho(t, c, "fresh")
	c.closeNormal()
}

func TestHostileHandshake(t *testing.T) {
	_, addr, rec, healthy := hostileServer(t, server.Config{})
	longValue := strings.Repeat("a", 9000)
	var manyLines strings.Builder
	for i := range 65 {
		fmt.Fprintf(&manyLines, "X-Filler-%d: %d\r\n", i, i)
	}
	var bigHead strings.Builder
	for i := range 40 {
		fmt.Fprintf(&bigHead, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 250))
	}
	cases := []struct {
		name    string
		request string
		status  int
		header  [2]string // a response header the status requires, if any
	}{
		{name: "missing_host", request: req(getLine, upgLine, connLine, keyLine, verLine), status: 400},
		{name: "empty_host", request: req(getLine, "Host: \r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "repeated_host", request: req(getLine, hostLine, hostLine, upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_with_space", request: req(getLine, "Host: exa mple.com\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_with_path", request: req(getLine, "Host: example.com/chat\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_with_userinfo", request: req(getLine, "Host: user@example.com\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_bad_port", request: req(getLine, "Host: example.com:http\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_unclosed_ipv6", request: req(getLine, "Host: [::1\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "host_non_ascii", request: req(getLine, "Host: b\xc3\xa4d.example\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "missing_upgrade", request: req(getLine, hostLine, connLine, keyLine, verLine), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "upgrade_not_websocket", request: req(getLine, hostLine, "Upgrade: h2c\r\n", connLine, keyLine, verLine), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "missing_connection", request: req(getLine, hostLine, upgLine, keyLine, verLine), status: 400},
		{name: "connection_keep_alive", request: req(getLine, hostLine, upgLine, "Connection: keep-alive\r\n", keyLine, verLine), status: 400},
		{name: "missing_key", request: req(getLine, hostLine, upgLine, connLine, verLine), status: 400},
		{name: "short_key", request: req(getLine, hostLine, upgLine, connLine, "Sec-WebSocket-Key: abc\r\n", verLine), status: 400},
		{name: "key_14_bytes", request: req(getLine, hostLine, upgLine, connLine, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAA=\r\n", verLine), status: 400},
		{name: "key_not_base64", request: req(getLine, hostLine, upgLine, connLine, "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n", verLine), status: 400},
		{name: "repeated_key", request: req(getLine, hostLine, upgLine, connLine, keyLine, keyLine, verLine), status: 400},
		{name: "missing_version", request: req(getLine, hostLine, upgLine, connLine, keyLine), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version_8", request: req(getLine, hostLine, upgLine, connLine, keyLine, "Sec-WebSocket-Version: 8\r\n"), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version_14", request: req(getLine, hostLine, upgLine, connLine, keyLine, "Sec-WebSocket-Version: 14\r\n"), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version_list", request: req(getLine, hostLine, upgLine, connLine, keyLine, "Sec-WebSocket-Version: 13, 8\r\n"), status: 426,
			header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "method_post", request: req("POST /chat HTTP/1.1\r\n", hostLine, upgLine, connLine, keyLine, verLine), status: 405,
			header: [2]string{"Allow", "GET"}},
		{name: "method_put_plain", request: req("PUT /chat HTTP/1.1\r\n", hostLine, "Content-Length: 0\r\n"), status: 405,
			header: [2]string{"Allow", "GET"}},
		{name: "method_head_upgrade", request: req("HEAD /chat HTTP/1.1\r\n", hostLine, upgLine, connLine, keyLine, verLine), status: 405},
		{name: "http_1_0", request: req("GET /chat HTTP/1.0\r\n", hostLine, upgLine, connLine, keyLine, verLine), status: 400},
		{name: "http_2_preface", request: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 505},
		{name: "header_over_limit", request: req(getLine, hostLine, upgLine, connLine, keyLine, verLine, "X-Long: "+longValue+"\r\n"), status: 431},
		{name: "head_over_limit", request: req(getLine, hostLine, upgLine, connLine, keyLine, verLine, bigHead.String()), status: 431},
		{name: "too_many_header_lines", request: req(getLine, hostLine, upgLine, connLine, keyLine, verLine, manyLines.String()), status: 431},
		{name: "request_line_over_limit", request: "GET /" + longValue + " HTTP/1.1\r\n" + hostLine + endOfHead, status: 414},
		{name: "lowercase_method", request: req("get /chat HTTP/1.1\r\n", hostLine, upgLine, connLine, keyLine, verLine), status: 400},
		{name: "bare_lf", request: strings.ReplaceAll(req(getLine, hostLine, upgLine, connLine, keyLine, verLine), "\r\n", "\n"), status: 400},
		{name: "obs_fold", request: req(getLine, hostLine, upgLine, connLine, " folded\r\n", keyLine, verLine), status: 400},
		{name: "space_in_header_name", request: req(getLine, hostLine, "Up grade: websocket\r\n", connLine, keyLine, verLine), status: 400},
		{name: "nul_in_header", request: req(getLine, hostLine, upgLine, connLine, keyLine, verLine, "X-Nul: a\x00b\r\n"), status: 400},
		{name: "non_ascii_header_name", request: req(getLine, hostLine, "X-Gr\xc3\xbc\xc3\x9fe: 1\r\n", upgLine, connLine, keyLine, verLine), status: 400},
		{name: "uri_with_space", request: req("GET /a b HTTP/1.1\r\n", hostLine, upgLine, connLine, keyLine, verLine), status: 400},
		{name: "no_request_line", request: req(hostLine, upgLine, connLine, keyLine, verLine), status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opens, _ := rec.counts()
			a := attack(t, addr, []byte(tc.request))
			if a.resp == nil || a.resp.StatusCode != tc.status {
				t.Fatalf("answered %v, want %d", a, tc.status)
			}
			if h := tc.header; h[0] != "" && a.resp.Header.Get(h[0]) != h[1] {
				t.Fatalf("%d without %s: %s (headers %v)", tc.status, h[0], h[1], a.resp.Header)
			}
			t.Logf("answered %s", a)
			stillServing(t, addr, rec, healthy, opens)
		})
	}
}

// TestHostileGarbage sends bytes that are not HTTP at all: the server answers
// 400 or closes, at once, without waiting for the handshake timeout.
func TestHostileGarbage(t *testing.T) {
	_, addr, rec, healthy := hostileServer(t, server.Config{HandshakeTimeout: time.Minute})
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	for i := range random[:1] {
		random[i] |= 0x80 // never starts like a request line
	}
	highBytes := bytes.Repeat([]byte{0xff, 0xfe, 0x80, 0xc3}, 512)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"random_bytes", random},
		{"non_ascii_bytes", highBytes},
		{"utf8_text", []byte("ПРИВЕТ / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")},
		{"get_then_binary", append([]byte("GET /chat HTTP/1.1\r\nHost: x\r\n"), highBytes...)},
		{"nul_bytes", make([]byte, 512)},
		{"websocket_frame_first", clientFrame(1, true, 0, []byte("no handshake"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opens, _ := rec.counts()
			a := attack(t, addr, tc.raw)
			if !a.closed && a.resp.StatusCode != 400 {
				t.Fatalf("answered %v, want 400 or a closed connection", a)
			}
			t.Logf("answered %s", a)
			stillServing(t, addr, rec, healthy, opens)
		})
	}
}

// TestHostileTLSClientHello sends the start of a TLS 1.2/1.3 handshake to the
// plain-text port, as a client configured for wss:// by mistake would.
func TestHostileTLSClientHello(t *testing.T) {
	_, addr, rec, healthy := hostileServer(t, server.Config{HandshakeTimeout: time.Minute})
	// A ClientHello record header and the start of its body (SNI "localhost").
	hello := []byte{
		0x16, 0x03, 0x01, 0x00, 0xc4, // handshake record, TLS 1.0 compat, length
		0x01, 0x00, 0x00, 0xc0, 0x03, 0x03, // ClientHello, length, client_version TLS 1.2
	}
	hello = append(hello, bytes.Repeat([]byte{0x5a}, 32)...) // random
	hello = append(hello, 0x00, 0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f, 0x01, 0x00)
	hello = append(hello, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x08, 0x00, 0x00, 0x05)
	hello = append(hello, "localhost"...)
	opens, _ := rec.counts()
	a := attack(t, addr, hello)
	if !a.closed && a.resp.StatusCode != 400 {
		t.Fatalf("answered %v, want 400 or a closed connection", a)
	}
	t.Logf("answered %s", a)
	stillServing(t, addr, rec, healthy, opens)
}

// TestHostileOverMaxConns fills MaxConns: the next upgrade gets 503 with
// Retry-After, and a slot frees up when a connection closes.
func TestHostileOverMaxConns(t *testing.T) {
	s, addr, rec, healthy := hostileServer(t, server.Config{MaxConns: 2})
	second := dialRaw(t, addr)
	second.handshake("/")
	opens, _ := rec.counts()
	a := attack(t, addr, []byte(upgradeRequest("/", "")))
	if a.resp == nil || a.resp.StatusCode != 503 || a.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("answered %v, want 503 with Retry-After", a)
	}
	if o, _ := rec.counts(); o != opens {
		t.Fatal("connection over MaxConns reached OnOpen")
	}
	checkEcho(t, healthy, "still here")
	second.closeNormal()
	if !waitFor(10*time.Second, func() bool { return s.Conns() == 1 }) {
		t.Fatalf("Conns() = %d after a close, want 1", s.Conns())
	}
	stillServing(t, addr, rec, healthy, opens)
}
