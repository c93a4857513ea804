package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/megaws/megaws/internal/brokertest"
)

// brokers are the --broker kinds, each with the function starting a real one.
var brokers = []struct {
	name  string
	start func(testing.TB) *brokertest.Process
}{
	{name: "nats", start: brokertest.StartNATS},
	{name: "redis", start: brokertest.StartRedis},
}

// TestClusterBroadcast runs two `megaws serve --mode broadcast --broker URL`
// processes on a real NATS and a real Redis: a message sent by a client of
// either node reaches the clients of both, once.
func TestClusterBroadcast(t *testing.T) {
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			p := br.start(t)
			a := startMegaws(t, "--mode", "broadcast", "--broker", p.URL(), "--log-level", "warn")
			b := startMegaws(t, "--mode", "broadcast", "--broker", p.URL(), "--log-level", "warn")
			if err := p.WaitSubscribers("megaws.all", 2, 15*time.Second); err != nil {
				t.Fatal(err)
			}
			ca, cb := brokertest.DialPlain(t, a, "/"), brokertest.DialPlain(t, b, "/")
			for i, from := range []*brokertest.Client{ca, cb, ca} {
				msg := fmt.Sprintf("hello-%d", i)
				from.Send(msg)
				for _, c := range []*brokertest.Client{ca, cb} {
					if got := c.Expect(1, 15*time.Second); got[0] != msg {
						t.Fatalf("%s got %q, want %q", c.ID, got[0], msg)
					}
				}
			}
			ca.Quiet(150 * time.Millisecond)
			cb.Quiet(150 * time.Millisecond)
		})
	}
}

// TestServeBrokerErrors: a --broker that is not a broker URL is a usage
// error (exit 2); a broker that does not answer stops the node from starting
// (exit 1, naming it).
func TestServeBrokerErrors(t *testing.T) {
	bin := megawsBinary(t)
	port := strconv.Itoa(freePort(t))
	for _, tc := range []struct {
		broker string
		code   int
		want   string
	}{
		{broker: "ftp://127.0.0.1:21", code: 2, want: "want nats://HOST:PORT or redis://HOST:PORT"},
		{broker: "nats://", code: 2, want: "no host:port"},
		{broker: "nats://127.0.0.1:" + port, code: 1, want: "megaws: broker: megaws/nats: connect nats://127.0.0.1:" + port},
		{broker: "redis://127.0.0.1:" + port, code: 1, want: "megaws: broker: megaws/redis: connect redis://127.0.0.1:" + port},
	} {
		cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--broker", tc.broker)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("--broker %s: %v, want exit %d and %q in:\n%s", tc.broker, err, tc.code, tc.want, out)
		}
	}
}

// clusterCases are the cases cluster-e2e.mjs must run.
var clusterCases = []string{
	"page A and page B open the board on their nodes",
	"a click on page A appears on page B (node to node)",
	"a click on page B appears on page A (and back)",
	"a drag on page A paints a stroke seen by page B",
	"page B paints a shape seen by page A",
	"page A erases its own cell on both pages",
	"screenshot",
}

// TestClusterDemoBrowser runs scripts/cluster.sh (NATS, two
// `megaws serve --broker URL --mode demo` nodes, nginx in front) and drives
// the demo board in headless Chromium from two pages pinned to different
// nodes through nginx (scripts/js/cluster-e2e.mjs): each page sees the
// other's strokes. nginx's access log shows that the two pages' WebSockets
// were served by two different nodes. Stopping the script stops everything
// it started. (TestClusterScript runs the script on Redis.)
func TestClusterDemoBrowser(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	requireTool(t, "nginx")
	cl := startClusterScript(t, "nats", 2)
	png := filepath.Join(artifactDir(t), "cluster.png")
	_ = os.Remove(png)
	rep := runJS(t, 3*time.Minute, "cluster-e2e.mjs", cl.nodeURLs[0], cl.nodeURLs[1], png, "--timeout", "150")
	requireAllPass(t, rep, clusterCases...)
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10<<10 {
		t.Errorf("screenshot %s: %d bytes, %v: not a plausible PNG", png, len(b), err)
	}
	cl.stop(t)

	// Each page's WebSocket went through its own pinned port to its own node.
	byPort := map[string][]string{}
	for _, u := range cl.upgrades(t) {
		byPort[u.port] = append(byPort[u.port], u.upstream)
	}
	for i, port := range cl.pinnedPorts {
		if got := byPort[port]; len(got) != 1 || got[0] != cl.nodeAddrs[i] {
			t.Errorf("page on nginx port %s: WebSocket served by %q, want node %d at %s", port, got, i+1, cl.nodeAddrs[i])
		}
	}
}

// TestClusterScript runs scripts/cluster.sh on Redis with three demo nodes:
// three clients of nginx's load-balanced port land on three different nodes,
// and a move made on one reaches the other two.
func TestClusterScript(t *testing.T) {
	requireTool(t, "nginx")
	cl := startClusterScript(t, "redis", 3)
	if err := cl.waitNodes(t); err != nil {
		t.Fatal(err)
	}
	var clients []*brokertest.Client
	for range 3 {
		c := brokertest.DialPlain(t, "127.0.0.1:"+cl.port, "/ws")
		if hello := c.Expect(1, 15*time.Second)[0]; !strings.HasPrefix(hello, `{"t":"hello"`) {
			t.Fatalf("first message %q, want the demo's hello", hello)
		}
		clients = append(clients, c)
	}
	// The nodes subscribe to the room as their first player joins.
	if err := cl.broker.WaitSubscribers("megaws.room.board", 3, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	clients[0].Send(`{"t":"paint","i":77}`)
	for i, c := range clients {
		for {
			m := c.Expect(1, 15*time.Second)[0]
			if strings.HasPrefix(m, `{"t":"stats"`) {
				continue // each node's panel, once a second
			}
			if !strings.HasPrefix(m, `{"t":"paint","i":77,`) {
				t.Fatalf("client %d got %q, want the paint", i, m)
			}
			break
		}
	}
	for _, c := range clients {
		c.Close()
	}
	cl.stop(t)
	nodesUsed := map[string]bool{}
	for _, u := range cl.upgrades(t) {
		if u.port == cl.port {
			nodesUsed[u.upstream] = true
		}
	}
	if len(nodesUsed) != 3 {
		t.Errorf("nginx sent the three WebSockets to %d nodes (%v), want 3", len(nodesUsed), nodesUsed)
	}
}

// clusterRun is a running scripts/cluster.sh.
type clusterRun struct {
	cmd         *exec.Cmd
	exited      chan error
	out         *lockedBuffer
	workdir     string
	port        string              // nginx's load-balanced port
	broker      *brokertest.Process // for Subscribers; its Kind and Port only
	nodeURLs    []string            // through nginx, one node each
	nodeAddrs   []string            // the nodes' own addresses
	pinnedPorts []string            // nginx's port for each node
	pids        []int               // every process the script reported
	stopped     bool
}

var (
	clusterNodeRE = regexp.MustCompile(`^cluster: node \d+ (\S+) \(pid (\d+)\), alone via nginx at (http://127\.0\.0\.1:(\d+)/)$`)
	clusterPIDRE  = regexp.MustCompile(`^cluster: (?:broker|nginx) .*\(pid (\d+)\)`)
	upgradeRE     = regexp.MustCompile(`"GET /ws HTTP/1.1" 101 server_port=(\d+) upstream=(\S+)`)
)

// upgrade is a WebSocket nginx proxied: the port it came in on, the node.
type upgrade struct{ port, upstream string }

// upgrades reads nginx's access log (complete once nginx stopped: an
// upgraded connection is logged when it ends).
func (cl *clusterRun) upgrades(t *testing.T) []upgrade {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(cl.workdir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var us []upgrade
	for _, m := range upgradeRE.FindAllStringSubmatch(string(log), -1) {
		us = append(us, upgrade{port: m[1], upstream: m[2]})
	}
	t.Logf("nginx proxied %d WebSockets: %v", len(us), us)
	return us
}

// waitNodes waits until every node subscribed to the broadcast channel.
func (cl *clusterRun) waitNodes(t *testing.T) error {
	return cl.broker.WaitSubscribers("megaws.all", len(cl.nodeAddrs), 15*time.Second)
}

// startClusterScript runs scripts/cluster.sh with nodes nodes of the binary
// under test on free ports and waits for its "cluster: ready" line.
func startClusterScript(t *testing.T, broker string, nodes int) *clusterRun {
	t.Helper()
	root := repoRoot(t)
	workdir := t.TempDir()
	if _, err := brokertest.FindBinary(broker+"-server", strings.ToUpper(broker)+"_SERVER"); err != nil {
		t.Fatal(err)
	}
	port := freePortRange(t, nodes+1)
	brokerPort := freePortRange(t, 2)
	args := []string{filepath.Join(root, "scripts", "cluster.sh"),
		"--broker", broker, "--nodes", strconv.Itoa(nodes),
		"--port", strconv.Itoa(port), "--node-base", strconv.Itoa(freePortRange(t, nodes)),
		"--broker-port", strconv.Itoa(brokerPort),
		"--bin", megawsBinary(t), "--workdir", workdir, "--log-level", "warn"}
	cl := &clusterRun{cmd: exec.Command("bash", args...), exited: make(chan error, 1), out: &lockedBuffer{}, workdir: workdir,
		port:   strconv.Itoa(port),
		broker: brokertest.Attach(brokertest.Kind(broker), brokerPort, brokerPort+1)}
	stdout, err := cl.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cl.cmd.Stderr = cl.out
	if err := cl.cmd.Start(); err != nil {
		t.Fatalf("start scripts/cluster.sh: %v", err)
	}
	t.Cleanup(func() {
		cl.stop(t)
		if t.Failed() {
			for _, f := range []string{"node1.log", "node2.log", "node3.log", "broker.log", "error.log"} {
				b, _ := os.ReadFile(filepath.Join(workdir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = cl.out.Write([]byte(line + "\n"))
			if m := clusterNodeRE.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[2])
				cl.nodeAddrs = append(cl.nodeAddrs, m[1])
				cl.pids = append(cl.pids, pid)
				cl.nodeURLs = append(cl.nodeURLs, m[3])
				cl.pinnedPorts = append(cl.pinnedPorts, m[4])
			} else if m := clusterPIDRE.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				cl.pids = append(cl.pids, pid)
			}
			if line == "cluster: ready" {
				close(ready)
			}
		}
		cl.exited <- cl.cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-cl.exited:
		cl.stopped = true
		t.Fatalf("scripts/cluster.sh exited before ready: %v\n%s", err, cl.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("scripts/cluster.sh not ready after 60 s:\n%s", cl.out.String())
	}
	if len(cl.nodeURLs) != nodes || len(cl.pids) != nodes+2 {
		t.Fatalf("scripts/cluster.sh reported %d nodes and %d processes, want %d and %d:\n%s", len(cl.nodeURLs), len(cl.pids), nodes, nodes+2, cl.out.String())
	}
	t.Logf("scripts/cluster.sh ready:\n%s", cl.out.String())
	return cl
}

// stop sends SIGTERM to the script, which must exit 0 within 20 s having
// stopped every process it reported.
func (cl *clusterRun) stop(t *testing.T) {
	t.Helper()
	if cl.stopped {
		return
	}
	cl.stopped = true
	_ = cl.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-cl.exited:
		if err != nil {
			t.Errorf("scripts/cluster.sh exited with %v on SIGTERM:\n%s", err, cl.out.String())
		}
	case <-time.After(20 * time.Second):
		_ = cl.cmd.Process.Kill()
		t.Errorf("scripts/cluster.sh still running 20 s after SIGTERM; killed\n%s", cl.out.String())
		return
	}
	for _, pid := range cl.pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("pid %d still runs after scripts/cluster.sh ended", pid)
		}
	}
	if !bytes.Contains([]byte(cl.out.String()), []byte("cluster: stopped")) {
		t.Errorf("no `cluster: stopped` line:\n%s", cl.out.String())
	}
}

// freePortRange returns the first of n consecutive loopback ports that were
// free a moment ago.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := freePort(t)
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base + 1; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			_ = ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
