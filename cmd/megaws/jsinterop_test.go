package main_test

// Real clients against `megaws serve`: the npm `ws` client under Node, and headless
// Chromium's own WebSocket (Debian's chromium driven by playwright-core). The client
// suites live in scripts/js; each prints a JSON report that these tests judge case by
// case. Install the tools with scripts/setup.sh.

import (
	"strings"
	"testing"
	"time"
)

const jsTimeout = 90 * time.Second // the scripts stop themselves at 60 s

// nodeCases are the cases node-client.mjs must run; a renamed or dropped case fails.
var nodeCases = []string{
	`text echo "hello"`,
	"text echo multi-byte UTF-8",
	"binary echo random bytes",
	"1 MiB text echo",
	"1 MiB binary echo",
	"fragmented text message",
	"ping with payload gets pong with same payload",
	"100 pipelined messages echoed in order",
	`close 4000 "bye" is echoed`,
}

var chromiumCases = []string{
	"text echo",
	"binary ArrayBuffer echo",
	"1 MiB binary echo",
	"50 pipelined messages echoed in order",
	`close 4001 "done" is echoed`,
}

func TestNodeWSClient(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	addr := startMegaws(t)
	rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, nodeCases...)
	if rep.Deflate != nil && rep.Deflate.Negotiated != nil && *rep.Deflate.Negotiated {
		t.Errorf("server negotiated permessage-deflate although the client did not offer it: %q", deref(rep.Deflate.Extensions))
	}
}

func TestNodeWSClientDeflate(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	addr := startMegaws(t, "--compression")
	rep := runJS(t, jsTimeout, "node-client.mjs", "ws://"+addr+"/", "--deflate", "--require-deflate", "--timeout", "60")
	requireAllPass(t, rep, append([]string{"deflate negotiated"}, nodeCases...)...)
	if rep.Deflate == nil || rep.Deflate.Negotiated == nil || !*rep.Deflate.Negotiated {
		t.Errorf("permessage-deflate was not negotiated with --compression")
	} else {
		t.Logf("negotiated extensions: %s", deref(rep.Deflate.Extensions))
	}
}

func TestChromiumClient(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	addr := startMegaws(t)
	rep := runJS(t, jsTimeout, "chromium-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, chromiumCases...)
	// Chromium always offers permessage-deflate; without --compression megaws must
	// decline it (an empty Sec-WebSocket-Extensions).
	t.Logf("chromium %s, negotiated extensions %q", rep.BrowserVersion, deref(rep.Extensions))
	if ext := deref(rep.Extensions); strings.Contains(ext, "permessage-deflate") {
		t.Errorf("megaws without --compression accepted permessage-deflate from Chromium: %q", ext)
	}
}

// TestChromiumClientDeflate runs the browser suite with compression on: Chromium's
// offer (with client_max_window_bits) must be accepted, and every echo must survive
// the server's inflate of Chromium's frames and Chromium's inflate of the server's.
func TestChromiumClientDeflate(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	addr := startMegaws(t, "--compression")
	rep := runJS(t, jsTimeout, "chromium-client.mjs", "ws://"+addr+"/", "--timeout", "60")
	requireAllPass(t, rep, chromiumCases...)
	t.Logf("chromium %s, negotiated extensions %q", rep.BrowserVersion, deref(rep.Extensions))
	if ext := deref(rep.Extensions); !strings.Contains(ext, "permessage-deflate") {
		t.Errorf("megaws --compression did not accept Chromium's permessage-deflate offer: ws.extensions = %q", ext)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
