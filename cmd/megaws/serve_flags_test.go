package main

// Unit tests of serve's flag parsing and startup decisions, in package main
// because they call serve, parseServe and startAdmin directly.

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

func TestParseOrigins(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		want       []string
		err        string // a substring of the error; "" for none
	}{
		{name: "empty means any origin", list: "", want: nil},
		{name: "one", list: "https://game.example", want: []string{"https://game.example"}},
		{name: "three, spaces trimmed", list: " https://a.example , http://b.example:8080,https://c.example",
			want: []string{"https://a.example", "http://b.example:8080", "https://c.example"}},
		{name: "IPv4 and IPv6 hosts", list: "http://127.0.0.1:8080,http://[::1]:8080",
			want: []string{"http://127.0.0.1:8080", "http://[::1]:8080"}},
		{name: "non-http scheme", list: "chrome-extension://abcdef", want: []string{"chrome-extension://abcdef"}},
		{name: "empty item", list: "https://a.example,,https://b.example", err: "item 2 is empty"},
		{name: "trailing comma", list: "https://a.example,", err: "item 2 is empty"},
		{name: "only spaces", list: "  ", err: "item 1 is empty"},
		{name: "no scheme", list: "game.example", err: "want scheme://host[:port]"},
		{name: "null", list: "null", err: "want scheme://host[:port]"},
		{name: "path", list: "https://game.example/play", err: `path, query or fragment ("/play")`},
		{name: "trailing slash", list: "https://game.example/", err: "path, query or fragment"},
		{name: "query", list: "https://game.example?x=1", err: "path, query or fragment"},
		{name: "fragment", list: "https://game.example#top", err: "path, query or fragment"},
		{name: "user info", list: "https://me@game.example", err: "user info"},
		{name: "wildcard", list: "https://*.game.example", err: "wildcards are not supported"},
		{name: "uppercase", list: "https://Game.Example", err: `lowercase: use "https://game.example"`},
		{name: "default https port", list: "https://game.example:443", err: `default port: use "https://game.example"`},
		{name: "default http port", list: "http://[::1]:80", err: `default port: use "http://[::1]"`},
		{name: "empty port", list: "https://game.example:", err: "empty port"},
		{name: "bad port", list: "https://game.example:99999", err: `bad port "99999"`},
		{name: "leading zero port", list: "https://game.example:0443", err: `bad port "0443"`},
		{name: "no host", list: "https://", err: "want scheme://host[:port]"},
		{name: "bad host", list: "https://game example", err: "want scheme://host[:port]"},
		{name: "bad scheme", list: "1http://game.example", err: "want scheme://host[:port]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOrigins(tc.list)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--allowed-origins") {
					t.Fatalf("parseOrigins(%q) = %q, %v; want an --allowed-origins error containing %q", tc.list, got, err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || (got == nil) != (tc.want == nil) {
				t.Fatalf("parseOrigins(%q) = %q, %v; want %q", tc.list, got, err, tc.want)
			}
		})
	}
}

// TestServeRejectsBadOrigins: a bad --allowed-origins is a usage error (exit
// 2) that names the item, and nothing starts.
func TestServeRejectsBadOrigins(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := serve([]string{"--addr", "127.0.0.1:0", "--allowed-origins", "https://ok.example,https://bad.example/path"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), `"https://bad.example/path" is not an origin`) || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 naming the bad origin", code, stdout.String(), stderr.String())
	}
}

func TestAllowedOriginsFlag(t *testing.T) {
	f, err := parseServe([]string{"--allowed-origins", "https://a.example, https://b.example"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.cfg.AllowedOrigins, "|"); got != "https://a.example|https://b.example" {
		t.Fatalf("cfg.AllowedOrigins = %q", f.cfg.AllowedOrigins)
	}
	if f, err = parseServe(nil, &bytes.Buffer{}); err != nil || f.cfg.AllowedOrigins != nil {
		t.Fatalf("default cfg.AllowedOrigins = %q, %v; want none (any origin)", f.cfg.AllowedOrigins, err)
	}
}

// TestMemoryReleaseFlag: the CLI keeps the releaser on at 5 s whatever the
// library's default, and its 0 means off, which the library spells negative
// (its 0 is "default", and the default is changing).
func TestMemoryReleaseFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{args: nil, want: 5 * time.Second},
		{args: []string{"--memory-release", "250ms"}, want: 250 * time.Millisecond},
		{args: []string{"--memory-release", "0"}, want: -1},
		{args: []string{"--memory-release", "-3s"}, want: -1},
	} {
		f, err := parseServe(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := f.cfg.MemoryReleaseInterval; got != tc.want {
			t.Errorf("%q: cfg.MemoryReleaseInterval = %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestEngineStopped: when the engine stops without serve having stopped it,
// the exit code is 1 and the log says why, even when ListenAndServe returned
// nil (a supervisor must restart the server).
func TestEngineStopped(t *testing.T) {
	for _, err := range []error{nil, errors.New("listen tcp 127.0.0.1:80: bind: permission denied")} {
		var out bytes.Buffer
		log, _ := newLogger("info", &out)
		if code := engineStopped(err, log); code != 1 {
			t.Errorf("engineStopped(%v) = %d, want 1", err, code)
		}
		want := "without a stop signal"
		if err != nil {
			want = err.Error()
		}
		if s := out.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, "server stopped unexpectedly") || !strings.Contains(s, want) {
			t.Errorf("engineStopped(%v) logged %q, want an ERROR line with %q", err, s, want)
		}
	}
}

func TestExposed(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		exposed bool
	}{
		{ip: "127.0.0.1", exposed: false},
		{ip: "127.3.2.1", exposed: false},
		{ip: "::1", exposed: false},
		{ip: "::ffff:127.0.0.1", exposed: false},
		{ip: "0.0.0.0", exposed: true},
		{ip: "::", exposed: true},
		{ip: "10.1.2.3", exposed: true},
		{ip: "192.168.0.10", exposed: true},
		{ip: "fe80::1", exposed: true},
		{ip: "2001:db8::1", exposed: true},
	} {
		if got := exposed(&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 6060}); got != tc.exposed {
			t.Errorf("exposed(%s) = %v, want %v", tc.ip, got, tc.exposed)
		}
	}
	if !exposed(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}) {
		t.Error("exposed(a non-TCP address) = false, want true")
	}
}

// TestAdminWarnsWhenExposed: an admin listener on every interface logs a
// warning that the default log level shows; a loopback one does not.
func TestAdminWarnsWhenExposed(t *testing.T) {
	s := server.New(server.BaseHandler{}, server.Config{Loops: 1})
	for _, tc := range []struct {
		addr string
		warn bool
	}{
		{addr: "127.0.0.1:0", warn: false},
		{addr: "localhost:0", warn: false},
		{addr: ":0", warn: true},
		{addr: "0.0.0.0:0", warn: true},
	} {
		var out bytes.Buffer
		log, err := newLogger("info", &out) // serve's default --log-level
		if err != nil {
			t.Fatal(err)
		}
		stop, err := startAdmin(tc.addr, s, log)
		if err != nil {
			t.Fatalf("startAdmin(%s): %v", tc.addr, err)
		}
		stop()
		got := out.String()
		warned := strings.Contains(got, "level=WARN") && strings.Contains(got, "/debug/pprof") &&
			strings.Contains(got, "/metrics") && strings.Contains(got, "reachable from the network")
		if warned != tc.warn {
			t.Errorf("--admin %s: warned %v, want %v; log:\n%s", tc.addr, warned, tc.warn, got)
		}
	}
}

// TestWorkersWarning: --workers in a broadcasting mode without --broker warns
// that each worker broadcasts only to its own connections.
func TestWorkersWarning(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{args: []string{"--workers", "3", "--mode", "broadcast"}, warn: true},
		{args: []string{"--workers", "3", "--mode", "demo"}, warn: true},
		{args: []string{"--workers", "3", "--mode", "demo", "--broker", "nats://127.0.0.1:4222"}, warn: false},
		{args: []string{"--workers", "3"}, warn: false},
		{args: []string{"--mode", "broadcast"}, warn: false},
	} {
		f, err := parseServe(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := workersWarning(f) != ""; got != tc.warn {
			t.Errorf("%q: warning %v, want %v", tc.args, got, tc.warn)
		}
	}
}

// TestSendBufferFlag: --send-buffer reaches Config.SendBuffer; the default
// leaves the system's buffer.
func TestSendBufferFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{args: nil, want: 0},
		{args: []string{"--send-buffer", "32768"}, want: 32 << 10},
	} {
		f, err := parseServe(tc.args, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := f.cfg.SendBuffer; got != tc.want {
			t.Errorf("%q: cfg.SendBuffer = %d, want %d", tc.args, got, tc.want)
		}
	}
}
