package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// browserRequest is the opening handshake Chromium sends, with its usual
// header order and noise. The benchmarks parse it too.
const browserRequest = "GET /chat?room=lobby&token=abc HTTP/1.1\r\n" +
	"Host: game.example.com:8080\r\n" +
	"Connection: Upgrade\r\n" +
	"Pragma: no-cache\r\n" +
	"Cache-Control: no-cache\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n" +
	"Upgrade: websocket\r\n" +
	"Origin: https://game.example.com\r\n" +
	"Sec-WebSocket-Version: 13\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
	"Sec-WebSocket-Protocol: game.v2, game.v1\r\n" +
	"\r\n"

// validRequests must parse and pass Check, with the fields shown.
var validRequests = []struct {
	name       string
	raw        string
	uri        string
	path       string
	query      string
	host       string
	key        string
	origin     string
	protocols  []string
	extensions string
}{
	{
		name:       "browser",
		raw:        browserRequest,
		uri:        "/chat?room=lobby&token=abc",
		path:       "/chat",
		query:      "room=lobby&token=abc",
		host:       "game.example.com:8080",
		key:        "dGhlIHNhbXBsZSBub25jZQ==",
		origin:     "https://game.example.com",
		protocols:  []string{"game.v2", "game.v1"},
		extensions: "permessage-deflate; client_max_window_bits",
	},
	{
		name: "minimal",
		raw: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		uri:  "/",
		path: "/",
		host: "a",
		key:  "AAAAAAAAAAAAAAAAAAAAAA==",
	},
	{
		name: "case-insensitive names and values",
		raw: "GET /x HTTP/1.1\r\nhOsT: 127.0.0.1:9000\r\nUPGRADE: WebSocket\r\nconnection: UPGRADE\r\n" +
			"SEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nORIGIN: null\r\n\r\n",
		uri:    "/x",
		path:   "/x",
		host:   "127.0.0.1:9000",
		key:    "dGhlIHNhbXBsZSBub25jZQ==",
		origin: "null",
	},
	{
		name: "tokens in lists and optional whitespace",
		raw: "GET /?a=1?b HTTP/1.1\r\nHost:[::1]:80\r\nUpgrade: h2c , websocket\r\nConnection:keep-alive,\tUpgrade \r\n" +
			"Sec-WebSocket-Key:\tdGhlIHNhbXBsZSBub25jZQ==\t\r\nSec-WebSocket-Version:  13  \r\n\r\n",
		uri:   "/?a=1?b",
		path:  "/",
		query: "a=1?b",
		host:  "[::1]:80",
		key:   "dGhlIHNhbXBsZSBub25jZQ==",
	},
	{
		name: "multiple protocol and extension lines",
		raw: "GET /ws?q HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
			"Sec-WebSocket-Protocol: superchat, ,v3\r\nsec-websocket-protocol: last\r\n" +
			"Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x-other\r\n" +
			"Sec-WebSocket-Version: 13\r\nX-Empty:\r\n\r\n",
		uri:        "/ws?q",
		path:       "/ws",
		query:      "q",
		host:       "h",
		key:        "dGhlIHNhbXBsZSBub25jZQ==",
		protocols:  []string{"chat", "superchat", "v3", "last"},
		extensions: "permessage-deflate",
	},
	{
		name: "obs-text in a value",
		raw: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Name: J\xc3\xbcrgen\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		uri:  "/",
		path: "/",
		host: "a",
		key:  "dGhlIHNhbXBsZSBub25jZQ==",
	},
}

func TestParseRequestValid(t *testing.T) {
	for _, tc := range validRequests {
		t.Run(tc.name, func(t *testing.T) {
			const frame = "\x81\x85\x01\x02\x03\x04iggmn" // pipelined right after the head
			b := []byte(tc.raw + frame)
			r, n, err := ParseRequest(b, 0, 0)
			if err != nil || n != len(tc.raw) {
				t.Fatalf("ParseRequest = %d, %v; want %d, nil", n, err, len(tc.raw))
			}
			if err := r.Check(); err != nil {
				t.Fatalf("Check = %v", err)
			}
			for _, f := range []struct{ name, got, want string }{
				{name: "Method", got: string(r.Method), want: "GET"},
				{name: "Proto", got: string(r.Proto), want: "HTTP/1.1"},
				{name: "URI", got: string(r.URI), want: tc.uri},
				{name: "Path", got: string(r.Path()), want: tc.path},
				{name: "Query", got: string(r.Query()), want: tc.query},
				{name: "Host", got: string(r.Host), want: tc.host},
				{name: "Key", got: string(r.Key), want: tc.key},
				{name: "Version", got: string(r.Version), want: "13"},
				{name: "Origin", got: string(r.Origin), want: tc.origin},
				{name: "Extensions", got: string(r.Extensions), want: tc.extensions},
			} {
				if f.got != f.want {
					t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
				}
			}
			var protos []string
			r.Protocols(func(p []byte) bool { protos = append(protos, string(p)); return true })
			if strings.Join(protos, "|") != strings.Join(tc.protocols, "|") {
				t.Errorf("Protocols = %q, want %q", protos, tc.protocols)
			}
			if len(tc.protocols) > 0 && !strings.HasPrefix(tc.protocols[0], strings.Split(string(r.Protocol), ",")[0]) {
				t.Errorf("Protocol = %q", r.Protocol)
			}
			if !r.Upgrade || !r.ConnectionUpgrade {
				t.Errorf("Upgrade %v, ConnectionUpgrade %v", r.Upgrade, r.ConnectionUpgrade)
			}
			if got := string(r.Header("SEC-WEBSOCKET-VERSION")); got != "13" {
				t.Errorf("Header(version) = %q", got)
			}
			if r.Header("x-missing") != nil {
				t.Error("Header of an absent name is not nil")
			}
			// The pipelined frame is left where it was, intact.
			if string(b[n:]) != frame {
				t.Errorf("bytes after the head = %q", b[n:])
			}
			h, hn, err := DecodeHeader(b[n:])
			if err != nil || hn != 6 || h.Length != 5 {
				t.Errorf("pipelined frame header %+v, %d, %v", h, hn, err)
			}
		})
	}
}

// TestParseRequestVisitHeaders checks that VisitHeaders sees every line, in
// order, with trimmed values, and stops when asked.
func TestParseRequestVisitHeaders(t *testing.T) {
	r, _, err := ParseRequest([]byte("GET / HTTP/1.1\r\nA: 1\r\nB:\t 2 \r\nA: 3\r\n\r\n"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	r.VisitHeaders(func(k, v []byte) bool { got = append(got, string(k)+"="+string(v)); return true })
	if strings.Join(got, ",") != "A=1,B=2,A=3" {
		t.Fatalf("VisitHeaders saw %q", got)
	}
	got = got[:0]
	r.VisitHeaders(func(k, v []byte) bool { got = append(got, string(k)); return false })
	if len(got) != 1 {
		t.Fatalf("VisitHeaders did not stop: %q", got)
	}
	if string(r.Header("a")) != "1" {
		t.Fatalf("Header(a) = %q, want the first line's value", r.Header("a"))
	}
}

// upgradeLines builds a request head from the lines of a valid handshake with
// replacements: "Name" -> "Name: value" replaces that line, "Name" -> ""
// drops it, and extra lines come last.
func upgradeLines(repl map[string]string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET /chat HTTP/1.1\r\n")
	for _, name := range []string{"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"} {
		line, ok := repl[name]
		if !ok {
			line = name + ": " + map[string]string{
				"Host":                  "example.com",
				"Upgrade":               "websocket",
				"Connection":            "Upgrade",
				"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
				"Sec-WebSocket-Version": "13",
			}[name]
		}
		if line != "" {
			b.WriteString(line + "\r\n")
		}
	}
	for _, l := range extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rejectCases are requests refused either by ParseRequest (parseErr) or,
// once parsed, by Check (checkErr), with the HTTP status and the response
// header lines the RFCs ask for.
var rejectCases = []struct {
	name     string
	raw      string
	maxBytes int
	maxLines int
	parseErr error
	checkErr error
	status   int
	header   string
}{
	// RFC 6455 §4.2.1 rules, applied by Check.
	{name: "POST", raw: strings.Replace(upgradeLines(nil), "GET", "POST", 1), checkErr: ErrMethod, status: 405, header: "Allow: GET\r\n"},
	{name: "HTTP/1.0", raw: strings.Replace(upgradeLines(nil), "HTTP/1.1", "HTTP/1.0", 1), checkErr: ErrHTTP10, status: 400},
	{name: "missing Host", raw: upgradeLines(map[string]string{"Host": ""}), checkErr: ErrMissingHost, status: 400},
	{name: "empty Host", raw: upgradeLines(map[string]string{"Host": "Host:"}), checkErr: ErrMissingHost, status: 400},
	{name: "repeated Host", raw: upgradeLines(nil, "Host: example.com"), checkErr: ErrMissingHost, status: 400},
	{name: "Host with a path", raw: upgradeLines(map[string]string{"Host": "Host: a/b"}), checkErr: ErrMissingHost, status: 400},
	{name: "Host with a bad port", raw: upgradeLines(map[string]string{"Host": "Host: a:8x"}), checkErr: ErrMissingHost, status: 400},
	{name: "no Upgrade", raw: upgradeLines(map[string]string{"Upgrade": ""}), checkErr: ErrNotUpgrade, status: 426, header: "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"},
	{name: "Upgrade h2c", raw: upgradeLines(map[string]string{"Upgrade": "Upgrade: h2c"}), checkErr: ErrNotUpgrade, status: 426, header: "Upgrade: websocket\r\n"},
	{name: "Upgrade websocketx", raw: upgradeLines(map[string]string{"Upgrade": "Upgrade: websocketx"}), checkErr: ErrNotUpgrade, status: 426},
	{name: "no Connection", raw: upgradeLines(map[string]string{"Connection": ""}), checkErr: ErrConnectionHeader, status: 400},
	{name: "Connection keep-alive", raw: upgradeLines(map[string]string{"Connection": "Connection: keep-alive"}), checkErr: ErrConnectionHeader, status: 400},
	{name: "Connection upgraded", raw: upgradeLines(map[string]string{"Connection": "Connection: upgraded"}), checkErr: ErrConnectionHeader, status: 400},
	{name: "version 8", raw: upgradeLines(map[string]string{"Sec-WebSocket-Version": "Sec-WebSocket-Version: 8"}), checkErr: ErrVersion, status: 426, header: "Sec-WebSocket-Version: 13\r\n"},
	{name: "version 14", raw: upgradeLines(map[string]string{"Sec-WebSocket-Version": "Sec-WebSocket-Version: 14"}), checkErr: ErrVersion, status: 426, header: "Sec-WebSocket-Version: 13\r\n"},
	{name: "version list", raw: upgradeLines(map[string]string{"Sec-WebSocket-Version": "Sec-WebSocket-Version: 13, 8"}), checkErr: ErrVersion, status: 426},
	{name: "no version", raw: upgradeLines(map[string]string{"Sec-WebSocket-Version": ""}), checkErr: ErrVersion, status: 426},
	{name: "no key", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": ""}), checkErr: ErrKey, status: 400},
	{name: "key 23 bytes", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ="}), checkErr: ErrKey, status: 400},
	{name: "key 25 bytes", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==="}), checkErr: ErrKey, status: 400},
	{name: "key of 17 bytes", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ1x"}), checkErr: ErrKey, status: 400},
	{name: "key not base64", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!!=="}), checkErr: ErrKey, status: 400},
	{name: "empty key", raw: upgradeLines(map[string]string{"Sec-WebSocket-Key": "Sec-WebSocket-Key:"}), checkErr: ErrKey, status: 400},
	{name: "repeated key", raw: upgradeLines(nil, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="), checkErr: errRepeatedWebSocketKy, status: 400},

	// HTTP syntax, refused by ParseRequest.
	{name: "HTTP/2.0", raw: strings.Replace(upgradeLines(nil), "HTTP/1.1", "HTTP/2.0", 1), parseErr: ErrHTTPVersion, status: 505},
	{name: "HTTP/3.1", raw: "GET / HTTP/3.1\r\n\r\n", parseErr: ErrHTTPVersion, status: 505},
	{name: "HTTP/1.1 lowercase", raw: "GET / http/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "proto too long", raw: "GET / HTTP/1.11\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "no proto", raw: "GET /\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "space in URI", raw: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "lowercase method", raw: "get / HTTP/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "digit in method", raw: "G3T / HTTP/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "double space", raw: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "obs-fold", raw: upgradeLines(nil, "X-A: b", " folded"), parseErr: ErrBadRequest, status: 400},
	{name: "obs-fold tab", raw: upgradeLines(nil, "X-A: b", "\tfolded"), parseErr: ErrBadRequest, status: 400},
	{name: "no colon", raw: upgradeLines(nil, "NoColon"), parseErr: ErrBadRequest, status: 400},
	{name: "empty name", raw: upgradeLines(nil, ": v"), parseErr: ErrBadRequest, status: 400},
	{name: "space before colon", raw: upgradeLines(nil, "Host : a"), parseErr: ErrBadRequest, status: 400},
	{name: "NUL in value", raw: upgradeLines(nil, "X-A: a\x00b"), parseErr: ErrBadRequest, status: 400},
	{name: "DEL in value", raw: upgradeLines(nil, "X-A: \x7f"), parseErr: ErrBadRequest, status: 400},
	{name: "ESC in name", raw: upgradeLines(nil, "X\x1bA: b"), parseErr: ErrBadRequest, status: 400},
	{name: "control byte in URI", raw: "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "bare CR in value", raw: upgradeLines(nil, "X-A: a\rb"), parseErr: ErrBadRequest, status: 400},
	{name: "bare LF in request line", raw: "GET / HTTP/1.1\nHost: a\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "bare LF in a header", raw: upgradeLines(nil, "X-A: a\nX-B: b"), parseErr: ErrBadRequest, status: 400},
	{name: "bare LF only", raw: "GET / HTTP/1.1\nHost: a\n\n", parseErr: errNeedsCRLF, status: 400},
	{name: "TLS ClientHello", raw: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", parseErr: ErrTLSOnPlainPort, status: 400},
	{name: "TLS first byte", raw: "\x16", parseErr: ErrTLSOnPlainPort, status: 400},
	{name: "binary garbage", raw: "\x00\x01\x02\x03\xff\xfe", parseErr: ErrBadRequest, status: 400},
	{name: "high byte first", raw: "\xffGET / HTTP/1.1\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "leading CRLF", raw: "\r\nGET / HTTP/1.1\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "leading space", raw: " GET / HTTP/1.1\r\n\r\n", parseErr: ErrBadRequest, status: 400},
	{name: "garbage after a capital", raw: "G\x00\x01\x02", parseErr: ErrBadRequest, status: 400},

	// Limits.
	{name: "head too large", raw: upgradeLines(nil, "X-Pad: "+strings.Repeat("p", 300)), maxBytes: 256, parseErr: ErrHeaderTooLarge, status: 431},
	{name: "head one byte too large", raw: "GET / HTTP/1.1\r\nX: " + strings.Repeat("p", 40) + "\r\n\r\n", maxBytes: 62, parseErr: ErrHeaderTooLarge, status: 431},
	{name: "request line too long", raw: "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: a\r\n\r\n", maxBytes: 256, parseErr: ErrURITooLong, status: 414},
	{name: "too many lines", raw: upgradeLines(nil, "A: 1", "B: 2"), maxLines: 6, parseErr: ErrTooManyHeaders, status: 431},
	{name: "too many lines, then a bad line", raw: upgradeLines(nil, "A: 1", "B\x01: 2"), maxLines: 6, parseErr: ErrTooManyHeaders, status: 431},
	{name: "HTTP/2.0, then a control byte", raw: "GET / HTTP/2.0\r\nX: \x01\r\n\r\n", parseErr: ErrHTTPVersion, status: 505},
	{name: "too many lines default", raw: upgradeLines(nil, strings.Repeat("X: y\r\n", 60)+"Z: z"), parseErr: ErrTooManyHeaders, status: 431},
}

func TestParseRequestReject(t *testing.T) {
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			r, n, err := ParseRequest([]byte(tc.raw), tc.maxBytes, tc.maxLines)
			if tc.parseErr != nil {
				if err != tc.parseErr || n != 0 {
					t.Fatalf("ParseRequest = %d, %v; want 0, %v", n, err, tc.parseErr)
				}
			} else {
				if err != nil || n != len(tc.raw) {
					t.Fatalf("ParseRequest = %d, %v; want %d, nil", n, err, len(tc.raw))
				}
				if err = r.Check(); err != tc.checkErr {
					t.Fatalf("Check = %v, want %v", err, tc.checkErr)
				}
			}
			var he *HandshakeError
			if !errors.As(err, &he) || he.Status != tc.status {
				t.Fatalf("error %v, want status %d", err, tc.status)
			}
			if !strings.HasPrefix(he.Header, tc.header) {
				t.Fatalf("Header = %q, want %q", he.Header, tc.header)
			}
			checkRejection(t, he)
		})
	}
}

// checkRejection parses the response AppendRejection writes with net/http.
func checkRejection(t *testing.T, he *HandshakeError) {
	t.Helper()
	out := AppendRejection([]byte("old"), he)
	if !bytes.HasPrefix(out, []byte("old")) {
		t.Fatal("AppendRejection lost dst")
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out[3:])), nil)
	if err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, out[3:])
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != he.Status || string(body) != he.Reason+"\n" || !resp.Close {
		t.Fatalf("response %d close=%v body %q (%v)", resp.StatusCode, resp.Close, body, err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(he.Header, "\r\n"), "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && resp.Header.Get(k) != v {
			t.Fatalf("response header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
}

// TestParseRequestPrefixes feeds every prefix of every table request: each
// must be "need more" or already the whole answer, never another answer.
func TestParseRequestPrefixes(t *testing.T) {
	type input struct {
		name               string
		raw                string
		maxBytes, maxLines int
	}
	var inputs []input
	for _, tc := range validRequests {
		inputs = append(inputs, input{name: tc.name, raw: tc.raw})
	}
	for _, tc := range rejectCases {
		inputs = append(inputs, input{name: tc.name, raw: tc.raw, maxBytes: tc.maxBytes, maxLines: tc.maxLines})
	}
	for _, in := range inputs {
		_, wantN, wantErr := ParseRequest([]byte(in.raw), in.maxBytes, in.maxLines)
		for k := 0; k < len(in.raw); k++ {
			_, n, err := ParseRequest([]byte(in.raw[:k]), in.maxBytes, in.maxLines)
			if (n != 0 || err != nil) && !sameParse(n, err, wantN, wantErr) {
				t.Errorf("%s: prefix %d gives %d, %v; the whole gives %d, %v", in.name, k, n, err, wantN, wantErr)
				break
			}
		}
	}
}

// sameParse reports whether two ParseRequest results give the client the same
// answer: the same head length, or the same HTTP status.
func sameParse(n1 int, err1 error, n2 int, err2 error) bool {
	if n1 != n2 || (err1 == nil) != (err2 == nil) {
		return false
	}
	if err1 == nil {
		return true
	}
	var h1, h2 *HandshakeError
	return errors.As(err1, &h1) && errors.As(err2, &h2) && h1.Status == h2.Status && h1.Header == h2.Header
}

// TestParseRequestFailFast checks that heads that can never become valid are
// refused before their blank line arrives, so that garbage does not wait for
// the handshake timeout.
func TestParseRequestFailFast(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		maxBytes int
		want     error
	}{
		{name: "TLS", raw: "\x16\x03\x01", want: ErrTLSOnPlainPort},
		{name: "NUL", raw: "\x00", want: ErrBadRequest},
		{name: "lowercase", raw: "g", want: ErrBadRequest},
		{name: "control in request line", raw: "GET /\x00", want: ErrBadRequest},
		{name: "bad method byte", raw: "GE-", want: ErrBadRequest},
		{name: "control in header", raw: "GET / HTTP/1.1\r\nHost: a\x01", want: ErrBadRequest},
		{name: "bad request line", raw: "GET / FTP/1.0\r\nHost", want: ErrBadRequest},
		{name: "HTTP/2", raw: "GET / HTTP/2.0\r\n", want: ErrHTTPVersion},
		{name: "bad header name", raw: "GET / HTTP/1.1\r\nHo st", want: ErrBadRequest},
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\nA: b\r\n c", want: ErrBadRequest},
		{name: "full window without CRLF", raw: strings.Repeat("A", 64), maxBytes: 64, want: ErrURITooLong},
		{name: "full window", raw: "GET / HTTP/1.1\r\nX: " + strings.Repeat("y", 60), maxBytes: 64, want: ErrHeaderTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := ParseRequest([]byte(tc.raw), tc.maxBytes, 0)
			var he *HandshakeError
			if n != 0 || !errors.As(err, &he) || !errors.As(tc.want, new(*HandshakeError)) || he.Status != tc.want.(*HandshakeError).Status {
				t.Fatalf("ParseRequest = %d, %v; want 0, %v", n, err, tc.want)
			}
		})
	}
}

// TestParseRequestNeedMore lists partial heads that must wait for more bytes.
func TestParseRequestNeedMore(t *testing.T) {
	for _, raw := range []string{
		"",
		"G",
		"GET",
		"GET / HTTP/1.1\r",
		"GET / HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r",
		"GET / HTTP/1.1\r\nX-Value: caf\xc3\xa9\t",
	} {
		r, n, err := ParseRequest([]byte(raw), 0, 0)
		if n != 0 || err != nil || r.Method != nil {
			t.Errorf("ParseRequest(%q) = %d, %v; want 0, nil", raw, n, err)
		}
	}
}

// TestParseRequestMaxBytesBoundary checks that a head of exactly maxBytes
// bytes is accepted and one more byte is refused.
func TestParseRequestMaxBytesBoundary(t *testing.T) {
	raw := upgradeLines(nil)
	if _, n, err := ParseRequest([]byte(raw+"trailing frame bytes"), len(raw), 0); err != nil || n != len(raw) {
		t.Fatalf("head of exactly maxBytes: %d, %v", n, err)
	}
	if _, _, err := ParseRequest([]byte(raw), len(raw)-1, 0); err != ErrHeaderTooLarge {
		t.Fatalf("head of maxBytes+1: %v, want ErrHeaderTooLarge", err)
	}
}

// TestAppendAccept checks the example of RFC 6455 §1.3.
func TestAppendAccept(t *testing.T) {
	got := AppendAccept([]byte("x"), []byte("dGhlIHNhbXBsZSBub25jZQ=="))
	if string(got) != "xs3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AppendAccept = %q", got)
	}
}

func TestAppendUpgradeResponse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		protocol   string
		extensions string
	}{
		{name: "plain"},
		{name: "protocol", protocol: "game.v2"},
		{name: "both", protocol: "chat", extensions: DeflateResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := AppendUpgradeResponse(nil, []byte("dGhlIHNhbXBsZSBub25jZQ=="), tc.protocol, tc.extensions)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" ||
				resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
				resp.Header.Get("Sec-WebSocket-Protocol") != tc.protocol || resp.Header.Get("Sec-WebSocket-Extensions") != tc.extensions {
				t.Fatalf("response:\n%s", out)
			}
			if !bytes.HasSuffix(out, []byte("\r\n\r\n")) || bytes.Count(out, []byte("\r\n\r\n")) != 1 {
				t.Fatalf("response head does not end once with a blank line:\n%q", out)
			}
		})
	}
}

func TestAppendResponse(t *testing.T) {
	out := AppendResponse(nil, 418, "X-A: b\r\n", "short and stout\n")
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 418 || resp.Header.Get("X-A") != "b" || string(body) != "short and stout\n" ||
		resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("response:\n%s", out)
	}
	if out := AppendResponse(nil, 599, "", ""); !bytes.HasPrefix(out, []byte("HTTP/1.1 599 Status 599\r\n")) {
		t.Fatalf("unknown status: %q", out)
	}
}
