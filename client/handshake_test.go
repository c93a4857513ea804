package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/codec"
)

func TestDialNon101(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/busy":
			w.Header().Set("Retry-After", "7")
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			http.Error(w, "no websockets here", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	base := "ws" + strings.TrimPrefix(srv.URL, "http")
	for _, tc := range []struct {
		path   string
		status int
		body   string
		header string
	}{
		{path: "/", status: http.StatusForbidden, body: "no websockets here\n"},
		{path: "/busy", status: http.StatusServiceUnavailable, body: "try later\n", header: "Retry-After"},
		{path: "/redirect", status: http.StatusFound, header: "Location"},
	} {
		c, resp, err := client.Dial(testCtx(t), base+tc.path, nil)
		if c != nil {
			t.Fatalf("%s: got a connection", tc.path)
		}
		var he *client.HandshakeError
		if !errors.As(err, &he) || he.StatusCode != tc.status {
			t.Fatalf("%s: error %v, want a HandshakeError with status %d", tc.path, err, tc.status)
		}
		if resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s: response %v", tc.path, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		if tc.body != "" && string(body) != tc.body {
			t.Errorf("%s: body %q, want %q", tc.path, body, tc.body)
		}
		if tc.header != "" && resp.Header.Get(tc.header) == "" {
			t.Errorf("%s: response lacks %s", tc.path, tc.header)
		}
		if tc.status == http.StatusFound && !strings.Contains(err.Error(), "not followed") {
			t.Errorf("redirect error %q does not say it was not followed", err)
		}
	}
}

func TestDialBadResponses(t *testing.T) {
	good := func(key string) string { return string(codec.AppendAccept(nil, []byte(key))) }
	for _, tc := range []struct {
		name    string
		respond func(r *http.Request, key string) string
		want    string
	}{
		{name: "wrong accept", want: "Sec-WebSocket-Accept", respond: func(_ *http.Request, key string) string {
			return string(codec.AppendUpgradeResponse(nil, []byte(key+"x"), "", ""))
		}},
		{name: "no accept", want: "Sec-WebSocket-Accept", respond: func(*http.Request, string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		}},
		{name: "no upgrade", want: "Upgrade", respond: func(_ *http.Request, key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + good(key) + "\r\n\r\n"
		}},
		{name: "no connection upgrade", want: "Connection", respond: func(_ *http.Request, key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: " + good(key) + "\r\n\r\n"
		}},
		{name: "subprotocol not offered", want: "not offered", respond: func(_ *http.Request, key string) string {
			return string(codec.AppendUpgradeResponse(nil, []byte(key), "chat", ""))
		}},
		{name: "extension not offered", want: "not offered", respond: func(_ *http.Request, key string) string {
			return string(codec.AppendUpgradeResponse(nil, []byte(key), "", codec.DeflateResponse))
		}},
		{name: "garbage", want: "malformed", respond: func(*http.Request, string) string {
			return "SSH-2.0-OpenSSH_9.6\r\n\r\n"
		}},
		{name: "head too large", want: "too large", respond: func(_ *http.Request, key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + strings.Repeat("a", 9000) + "\r\n\r\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t, nil)
			s.respond = tc.respond
			c, _, err := client.Dial(testCtx(t), s.URL, nil)
			var he *client.HandshakeError
			if c != nil || !errors.As(err, &he) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial: %v, want a HandshakeError about %s", err, tc.want)
			}
		})
	}
}

func TestDialDeflateNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		response string
		ok       bool
	}{
		{name: "no context takeover", response: codec.DeflateResponse, ok: true},
		{name: "server_no_context_takeover only", response: "permessage-deflate; server_no_context_takeover", ok: true},
		{name: "server window bits", response: "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", ok: true},
		{name: "declined", response: "", ok: true},
		{name: "context takeover kept", response: "permessage-deflate", ok: false},
		{name: "client window limited", response: "permessage-deflate; server_no_context_takeover; client_max_window_bits=9", ok: false},
		{name: "unknown parameter", response: "permessage-deflate; server_no_context_takeover; foo", ok: false},
		{name: "other extension", response: "x-webkit-deflate-frame", ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var offer string
			s := newScripted(t, nil)
			s.respond = func(r *http.Request, key string) string {
				offer = r.Header.Get("Sec-WebSocket-Extensions")
				return string(codec.AppendUpgradeResponse(nil, []byte(key), "", tc.response))
			}
			c, _, err := client.Dial(testCtx(t), s.URL, &client.Options{Compression: true})
			if !strings.Contains(offer, "permessage-deflate") {
				t.Fatalf("offer %q", offer)
			}
			if tc.ok != (err == nil) {
				t.Fatalf("Dial: %v, want ok=%v", err, tc.ok)
			}
			if c != nil {
				if c.Compressed() != (tc.response != "") {
					t.Fatalf("Compressed %v", c.Compressed())
				}
				_ = c.NetConn().Close()
			}
		})
	}
}

// silentListener accepts connections and never answers.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return "ws://" + ln.Addr().String() + "/"
}

func TestDialContext(t *testing.T) {
	url := silentListener(t)
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := client.Dial(ctx, url, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("cancel took %v", d)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
		defer cancel()
		if _, _, err := client.Dial(ctx, url, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial: %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("handshake timeout", func(t *testing.T) {
		start := time.Now()
		_, _, err := client.Dial(context.Background(), url, &client.Options{HandshakeTimeout: 80 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("Dial: %v after %v", err, time.Since(start))
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := client.Dial(ctx, url, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial: %v", err)
		}
	})
}

func TestDialRefusedAndBadURLs(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, _, err := client.Dial(testCtx(t), "ws://"+addr+"/", nil); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	for _, u := range []string{"http://example.com/", "ws:///path", "ws://host/#frag", "://", "wss:opaque"} {
		if _, _, err := client.Dial(testCtx(t), u, nil); err == nil {
			t.Errorf("Dial(%q) succeeded", u)
		}
	}
	if _, _, err := client.Dial(testCtx(t), "ws://"+addr, &client.Options{Subprotocols: []string{"bad proto"}}); err == nil {
		t.Error("invalid subprotocol accepted")
	}
}

// TestDialRequest checks the request line and headers a server receives.
func TestDialRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	s := newScripted(t, nil)
	s.respond = func(r *http.Request, key string) string {
		got <- r
		return string(codec.AppendUpgradeResponse(nil, []byte(key), "", ""))
	}
	u := strings.Replace(s.URL, "ws://", "ws://user:pw@", 1) + "path/x?q=1&r=a%20b"
	c, _, err := client.Dial(testCtx(t), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.NetConn().Close()
	r := <-got
	if r.RequestURI != "/path/x?q=1&r=a%20b" || r.Header.Get("Sec-WebSocket-Version") != "13" || r.Header.Get("Upgrade") != "websocket" {
		t.Errorf("request %s %v", r.RequestURI, r.Header)
	}
	if user, pw, ok := r.BasicAuth(); !ok || user != "user" || pw != "pw" {
		t.Errorf("basic auth %q %q %v", user, pw, ok)
	}
	if r.Header.Get("Sec-WebSocket-Extensions") != "" || r.Header.Get("Sec-WebSocket-Protocol") != "" || r.Header.Get("Origin") != "" {
		t.Errorf("unasked headers sent: %v", r.Header)
	}
}
