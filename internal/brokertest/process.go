// Package brokertest runs real message brokers (nats-server, redis-server)
// for tests, and megaws cluster scenarios on top of them that broker/nats and
// broker/redis run with their own Broker. The binaries come from
// scripts/setup.sh; a missing one fails the test with that hint, it never
// skips.
package brokertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kind names a broker.
type Kind string

// The brokers this package runs.
const (
	NATS  Kind = "nats"
	Redis Kind = "redis"
)

// Process is a broker server run by a test on loopback ports. Kill and
// Restart act on the process the test started, by its PID; cleanup stops it.
type Process struct {
	Kind    Kind
	Port    int // client port
	MonPort int // NATS monitoring port (connz)

	t      testing.TB
	bin    string
	dir    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
}

// StartNATS starts nats-server on free loopback ports (client and
// monitoring) and waits until it accepts connections.
func StartNATS(t testing.TB) *Process { return start(t, NATS) }

// StartRedis starts redis-server on a free loopback port, without
// persistence, and waits until it answers PING.
func StartRedis(t testing.TB) *Process { return start(t, Redis) }

func start(t testing.TB, kind Kind) *Process {
	t.Helper()
	p := &Process{Kind: kind, t: t, dir: t.TempDir(), out: &lockedBuffer{}}
	var err error
	switch kind {
	case NATS:
		p.bin, err = FindBinary("nats-server", "NATS_SERVER")
		p.MonPort = FreePort(t)
	case Redis:
		p.bin, err = FindBinary("redis-server", "REDIS_SERVER")
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	p.Port = FreePort(t)
	t.Cleanup(p.stop)
	p.launch()
	return p
}

// FindBinary looks for name in $env, then on PATH, then in the directories
// where Debian packages and `go install` put it.
func FindBinary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %v", env, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (set $%s, or run scripts/setup.sh to install it)", name, env)
}

// URL is the broker's URL for the megaws --broker flag and the Broker configs.
func (p *Process) URL() string {
	return fmt.Sprintf("%s://127.0.0.1:%d", p.Kind, p.Port)
}

// PID is the process's id, 0 while it is not running.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) args() []string {
	port := strconv.Itoa(p.Port)
	switch p.Kind {
	case NATS:
		return []string{"-a", "127.0.0.1", "-p", port, "-m", strconv.Itoa(p.MonPort)}
	default:
		return []string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--dir", p.dir, "--logfile", ""}
	}
}

// launch starts the process and waits until it serves.
func (p *Process) launch() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args()...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.Dir = p.dir
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.ping()
		if err == nil {
			return
		}
		select {
		case <-exited:
			p.t.Fatalf("%s %s exited at start:\n%s", p.bin, strings.Join(p.args(), " "), p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s on port %d not ready after 10 s: %v\n%s", p.bin, p.Port, err, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping checks that the broker serves: NATS sends INFO first, Redis answers PING.
func (p *Process) ping() error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	if p.Kind == Redis {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") && !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	if p.Kind == NATS {
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", p.MonPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	return nil
}

// Kill kills the broker with SIGKILL (by its PID) and waits for it to exit:
// its clients see their connections reset, as in a crash.
func (p *Process) Kill() {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		p.t.Fatal("Kill: the broker is not running")
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill %d: %v", cmd.Process.Pid, err)
	}
	<-exited
}

// Pause stops the broker process (SIGSTOP): its connections stay open but
// nothing is read or answered, like a broker that hangs. Resume continues it.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused broker (SIGCONT).
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) {
	p.t.Helper()
	pid := p.PID()
	if pid == 0 {
		p.t.Fatalf("%v: the broker is not running", sig)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		p.t.Fatalf("%v %d: %v", sig, pid, err)
	}
}

// Restart starts the broker again on the same ports.
func (p *Process) Restart() {
	p.t.Helper()
	if p.PID() != 0 {
		p.t.Fatal("Restart: the broker is still running")
	}
	p.launch()
}

// stop ends the process at cleanup: SIGTERM, then SIGKILL after 5 s.
func (p *Process) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT) // in case a test paused it
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	if p.t.Failed() {
		p.t.Logf("%s output:\n%s", p.Kind, p.out.String())
	}
}

// Subscribers returns how many client connections are subscribed to
// channel, a full subject or channel name (prefix included), as the broker
// itself reports it: NATS's /connz?subs=1, Redis's PUBSUB NUMSUB.
func (p *Process) Subscribers(channel string) (int, error) {
	switch p.Kind {
	case NATS:
		return p.natsSubscribers(channel)
	default:
		return p.redisSubscribers(channel)
	}
}

func (p *Process) natsSubscribers(subject string) (int, error) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/connz?subs=1&limit=1024", p.MonPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Subs []string `json:"subscriptions_list"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range connz.Connections {
		for _, s := range c.Subs {
			if s == subject {
				n++
				break
			}
		}
	}
	return n, nil
}

func (p *Process) redisSubscribers(channel string) (int, error) {
	reply, err := p.RedisCommand("PUBSUB", "NUMSUB", channel)
	if err != nil {
		return 0, err
	}
	// *2 $len channel :count
	lines := strings.Split(strings.TrimSpace(reply), "\r\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[3], ":") {
		return 0, fmt.Errorf("PUBSUB NUMSUB: unexpected reply %q", reply)
	}
	return strconv.Atoi(lines[3][1:])
}

// RedisCommand sends one command to the Redis process and returns the raw
// RESP reply (one read; enough for the short replies tests ask for).
func (p *Process) RedisCommand(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// WaitSubscribers waits until Subscribers(channel) is want.
func (p *Process) WaitSubscribers(channel string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := p.Subscribers(channel)
		if err == nil && n == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: subscribers of %q: %v", p.Kind, channel, err)
			}
			return fmt.Errorf("%s: %d subscribers of %q after %v, want %d", p.Kind, n, channel, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects output written by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Attach returns a Process for a broker someone else runs on loopback (a
// script, say), for its queries only: Subscribers, WaitSubscribers,
// RedisCommand, URL. monPort is NATS's monitoring port.
func Attach(kind Kind, port, monPort int) *Process {
	return &Process{Kind: kind, Port: port, MonPort: monPort}
}
