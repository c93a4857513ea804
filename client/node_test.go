package client_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
)

// nodePeer is testdata/node-peer.cjs running under Node: the npm ws server.
type nodePeer struct {
	URL    string
	events chan map[string]any
}

// startNode starts the Node ws server for the test. It needs node and
// scripts/js/node_modules (scripts/setup.sh installs both).
func startNode(t *testing.T) *nodePeer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (%v): run scripts/setup.sh", err)
	}
	modules, err := filepath.Abs(filepath.Join("..", "scripts", "js", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "ws", "package.json")); err != nil {
		t.Fatalf("scripts/js/node_modules/ws is missing (%v): run scripts/setup.sh", err)
	}
	cmd := exec.Command(node, filepath.Join("testdata", "node-peer.cjs"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodePeer{events: make(chan map[string]any, 100)}
	port := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if n, ok := m["port"].(float64); ok {
				port <- int(n)
				continue
			}
			p.events <- m
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case n := <-port:
		p.URL = "ws://127.0.0.1:" + strconv.Itoa(n)
	case <-time.After(testTimeout):
		t.Fatal("the Node ws server did not start")
	}
	return p
}

// closeEvent waits for the server's report of a closed connection on path
// (each test uses its own path), skipping reports for other paths.
func (p *nodePeer) closeEvent(t *testing.T, path string) (code int, reason string) {
	t.Helper()
	for {
		select {
		case m := <-p.events:
			if m["path"] == path {
				return int(m["code"].(float64)), m["reason"].(string)
			}
		case <-time.After(testTimeout):
			t.Fatalf("no close reported for %s", path)
		}
	}
}

func TestNodeWSServer(t *testing.T) {
	p := startNode(t)
	for _, compression := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "deflate"}[compression]
		o := &client.Options{Compression: compression, CompressionThreshold: 1}
		t.Run(name+"/echo", func(t *testing.T) {
			c := dial(t, p.URL+"/echo", o)
			if c.Compressed() != compression {
				t.Fatalf("Compressed %v", c.Compressed())
			}
			text := []byte(strings.Repeat("ünïcode text, ", 10000))
			for _, m := range []struct {
				op ws.OpCode
				p  []byte
			}{{ws.OpText, []byte("hi")}, {ws.OpText, text}, {ws.OpBinary, pattern(1 << 20)}, {ws.OpBinary, nil}} {
				if err := c.WriteMessage(m.op, m.p); err != nil {
					t.Fatal(err)
				}
				op, got := read(t, c)
				if op != m.op || !bytes.Equal(got, m.p) {
					t.Fatalf("echo of %d bytes: %v, %d bytes", len(m.p), op, len(got))
				}
			}
		})
		t.Run(name+"/fragments", func(t *testing.T) {
			c := dial(t, p.URL+"/fragments", o)
			if op, got := read(t, c); op != ws.OpText || string(got) != "fragmented" {
				t.Fatalf("got %v %q", op, got)
			}
			want := append(bytes.Repeat([]byte{1}, 70000), bytes.Repeat([]byte{2}, 70000)...)
			if op, got := read(t, c); op != ws.OpBinary || !bytes.Equal(got, want) {
				t.Fatalf("got %v, %d bytes", op, len(got))
			}
		})
	}
	t.Run("server pings", func(t *testing.T) {
		pings := make(chan string, 1)
		c := dial(t, p.URL+"/ping", &client.Options{OnPing: func(b []byte) { pings <- string(b) }})
		if _, got := read(t, c); string(got) != "pong:hello" {
			t.Fatalf("the server reports %q, want pong:hello", got)
		}
		if got := <-pings; got != "hello" {
			t.Fatalf("OnPing %q", got)
		}
	})
	t.Run("client pings", func(t *testing.T) {
		pongs := make(chan string, 1)
		c := dial(t, p.URL+"/echo", &client.Options{OnPong: func(b []byte) { pongs <- string(b) }})
		if err := c.Ping([]byte("from go")); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(ws.OpText, []byte("sync")); err != nil {
			t.Fatal(err)
		}
		read(t, c)
		if got := <-pongs; got != "from go" {
			t.Fatalf("pong %q", got)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		c := dial(t, p.URL+"/close", nil)
		_, _, err := c.ReadMessage(testCtx(t))
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != 4002 || ce.Reason != "node bye" || !ce.Remote {
			t.Fatalf("ReadMessage: %v", err)
		}
		if code, _ := p.closeEvent(t, "/close"); code != 4002 {
			t.Fatalf("server saw close %d: its close was not echoed", code)
		}
	})
	t.Run("client closes", func(t *testing.T) {
		c := dial(t, p.URL+"/echo?closer", nil)
		if err := c.Close(4003, "go bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if code, reason := p.closeEvent(t, "/echo?closer"); code != 4003 || reason != "go bye" {
			t.Fatalf("server saw %d %q", code, reason)
		}
	})
	t.Run("headers origin subprotocol", func(t *testing.T) {
		c := dial(t, p.URL+"/headers", &client.Options{
			Origin:       "https://node.example",
			Header:       http.Header{"X-Token": {"tok"}},
			Subprotocols: []string{"chat.v1", "chat.v2"},
			Compression:  true,
		})
		_, got := read(t, c)
		var seen map[string]any
		if err := json.Unmarshal(got, &seen); err != nil {
			t.Fatal(err)
		}
		if seen["origin"] != "https://node.example" || seen["token"] != "tok" || seen["protocol"] != "chat.v2" {
			t.Errorf("server saw %v", seen)
		}
		if c.Subprotocol() != "chat.v2" || !c.Compressed() {
			t.Errorf("Subprotocol %q, Compressed %v", c.Subprotocol(), c.Compressed())
		}
		t.Logf("offer %q, server's view of the negotiation %v", seen["extensions"], seen["negotiated"])
	})
	t.Run("message over the limit", func(t *testing.T) {
		c := dial(t, p.URL+"/echo?limit", &client.Options{MaxMessageSize: 1000})
		if err := c.WriteMessage(ws.OpBinary, pattern(1001)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.ReadMessage(testCtx(t))
		if client.CloseStatus(err) != ws.StatusMessageTooBig {
			t.Fatalf("ReadMessage: %v", err)
		}
		if code, _ := p.closeEvent(t, "/echo?limit"); code != 1009 {
			t.Fatalf("server saw close %d, want 1009", code)
		}
	})
}
