//go:build linux

package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
	"golang.org/x/sys/unix"
)

// fdChild runs in a child process (the test binary re-executed) with its
// open-files limit lowered to 256: it serves echo on 127.0.0.1:0, prints
// "ADDR <addr>", and on a line on stdin prints its Stats as JSON and how
// ListenAndServe ended. With MEGAWS_FD_FILL=1 it then fills its descriptor
// table with files, the way a leaking embedder would.
func fdChild() {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: 256}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	s := server.New(echo{}, server.Config{Loops: 2})
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	fmt.Println("ADDR", s.Addr())
	if os.Getenv("MEGAWS_FD_FILL") == "1" {
		var files []*os.File
		for {
			f, err := os.Open(os.DevNull)
			if err != nil {
				break
			}
			files = append(files, f)
		}
		fmt.Println("FILLED", len(files))
	}
	in := bufio.NewScanner(os.Stdin)
	for {
		select {
		case err := <-done:
			fmt.Println("ENDED", err)
			if errors.Is(err, server.ErrUnexpectedStop) {
				os.Exit(3)
			}
			os.Exit(1)
		default:
		}
		if !in.Scan() {
			return
		}
		b, _ := json.Marshal(s.Stats())
		fmt.Println("STATS", string(b))
	}
}

func TestMain_fdChild(t *testing.T) {
	if os.Getenv("MEGAWS_FD_CHILD") == "1" {
		fdChild()
		os.Exit(0)
	}
}

type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	addr  string
}

func startFDChild(t *testing.T, fill bool) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMain_fdChild$")
	cmd.Env = append(os.Environ(), "MEGAWS_FD_CHILD=1")
	if fill {
		cmd.Env = append(cmd.Env, "MEGAWS_FD_FILL=1")
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	c.addr = strings.TrimPrefix(c.expect(t, "ADDR "), "ADDR ")
	return c
}

func (c *child) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("child printed no %q line", prefix)
		}
	}
}

// TestDescriptorStorm is the reported case at a smaller scale: with 256 open
// files allowed, 400 plain TCP connections that send nothing used to make
// gnet's accept fail with EMFILE and shut the whole server down, with exit
// status 0. Now the connections past the reserve are answered 503 and closed,
// the open connection keeps echoing, and once the storm is gone new clients
// are served again.
func TestDescriptorStorm(t *testing.T) {
	ch := startFDChild(t, false)
	healthy := dialRaw(t, ch.addr)
	healthy.handshake("/")
	checkEcho(t, healthy, "before")

	var storm []net.Conn
	shed := 0
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", ch.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		storm = append(storm, c)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 64)
			n, _ := io.ReadAtLeast(c, b, 12)
			if strings.HasPrefix(string(b[:n]), "HTTP/1.1 503") {
				mu.Lock()
				shed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if shed < 400-256 {
		t.Fatalf("%d of 400 storm connections answered 503; want at least %d", shed, 400-256)
	}
	checkEcho(t, healthy, "during the storm")
	for _, c := range storm {
		c.Close()
	}
	// Descriptors free up as the server notices the closes; then new
	// WebSocket clients are served.
	ok := waitFor(20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", ch.addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte(upgradeRequest("/", "")))
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 12)
		n, _ := io.ReadFull(c, b)
		return string(b[:n]) == "HTTP/1.1 101"
	})
	if !ok {
		t.Fatal("no new WebSocket connection succeeded after the storm")
	}
	checkEcho(t, healthy, "after")
	_, _ = io.WriteString(ch.in, "stats\n")
	var st server.Stats
	if err := json.Unmarshal([]byte(strings.TrimPrefix(ch.expect(t, "STATS "), "STATS ")), &st); err != nil {
		t.Fatal(err)
	}
	if st.FDShed < uint64(shed) {
		t.Fatalf("Stats.FDShed %d, want >= %d", st.FDShed, shed)
	}
	t.Logf("400 silent connections with 256 files allowed: %d answered 503 (FDShed %d), the server kept serving", shed, st.FDShed)
}

// TestUnexpectedStopIsAnError: when the event loops die anyway (here the
// process itself used up every descriptor, so accept fails), ListenAndServe
// returns ErrUnexpectedStop instead of nil, so the process can exit non-zero.
func TestUnexpectedStopIsAnError(t *testing.T) {
	ch := startFDChild(t, true)
	ch.expect(t, "FILLED")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", ch.addr, time.Second); err == nil {
			c.Close()
		}
		_, _ = io.WriteString(ch.in, "stats\n")
		select {
		case l := <-ch.lines:
			if strings.HasPrefix(l, "ENDED") {
				if !strings.Contains(l, server.ErrUnexpectedStop.Error()) {
					t.Fatalf("ListenAndServe ended with %q, want ErrUnexpectedStop", l)
				}
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the server survived a full descriptor table (fine, but this test needs it to stop)")
}
