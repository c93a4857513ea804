package main_test

// Helpers for the real-client interop tests: build the megaws binary once, run it as
// a child process, and run the Node / Chromium clients in scripts/js against it.
// The tools these tests need are installed by scripts/setup.sh; a missing one fails
// the test (it never skips), so CI cannot go green without running them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain removes the binary that megawsBinary built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the module root: tests run in cmd/megaws, two levels below it.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(gomod, []byte("module github.com/megaws/megaws")) {
		t.Fatalf("repo root %s (from %s) has no go.mod for github.com/megaws/megaws: %v", root, wd, err)
	}
	return root
}

// megawsBinary builds ./cmd/megaws once per test binary and returns its path.
// MEGAWS_BIN=/path/to/megaws tests that binary instead (a release build, say).
func megawsBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MEGAWS_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MEGAWS_BIN=%s: %v", p, err)
		}
		return p
	}
	root := repoRoot(t)
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "megaws-interop-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "megaws")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/megaws")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/megaws: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("%v", binErr)
	}
	return binPath
}

// lockedBuffer collects a child's output while the test reads it.
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

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// startMegaws runs `megaws serve --addr 127.0.0.1:0 ARGS...`, waits for the
// "listening on ADDR" line on stdout and returns ADDR. Cleanup sends SIGTERM and
// waits up to 5 s (then kills); a server that does not exit cleanly on SIGTERM
// fails the test, as the CLI promises a clean exit.
func startMegaws(t testing.TB, args ...string) string {
	t.Helper()
	bin := megawsBinary(t)
	argv := append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, argv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	var output lockedBuffer // stdout after the address line, and all of stderr
	cmd.Stderr = &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start megaws %s: %v", strings.Join(argv, " "), err)
	}

	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = output.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil && !sent {
				addrc <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-readDone // Wait closes stdout; let the reader finish first
		exited <- cmd.Wait()
	}()

	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("SIGTERM megaws (pid %d): %v", cmd.Process.Pid, err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("megaws %s did not exit cleanly on SIGTERM: %v\noutput:\n%s", strings.Join(argv, " "), err, output.String())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("megaws %s still running 5 s after SIGTERM; killed\noutput:\n%s", strings.Join(argv, " "), output.String())
		}
		if t.Failed() {
			t.Logf("megaws %s output:\n%s", strings.Join(argv, " "), output.String())
		}
	})

	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		stopped = true
		t.Fatalf("megaws %s exited before listening: %v\noutput:\n%s", strings.Join(argv, " "), err, output.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("megaws %s printed no `listening on ADDR` line within 15 s\noutput:\n%s", strings.Join(argv, " "), output.String())
	}
	addr = strings.TrimPrefix(addr, "tcp://")
	addr = strings.TrimRight(addr, ",;)")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("megaws printed listening address %q, want host:port: %v", addr, err)
	}
	waitForPort(t, addr, 5*time.Second)
	t.Logf("megaws %s listening on %s (pid %d)", strings.Join(argv, " "), addr, cmd.Process.Pid)
	return addr
}

// waitForPort dials addr until it accepts or the timeout passes.
func waitForPort(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing accepts on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// lookTool finds a command on PATH or in the sbin directories a non-login root
// shell may lack (Debian installs nginx in /usr/sbin).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in /usr/sbin", name)
}

// requireTool fails the test when something scripts/setup.sh installs is missing:
// "node", "chromium", "nginx", "openssl", or "node_modules" (scripts/js's npm ci).
func requireTool(t testing.TB, name string) {
	t.Helper()
	switch name {
	case "node_modules":
		js := filepath.Join(repoRoot(t), "scripts", "js", "node_modules")
		for _, pkg := range []string{"ws", "playwright-core"} {
			if _, err := os.Stat(filepath.Join(js, pkg, "package.json")); err != nil {
				t.Fatalf("scripts/js/node_modules/%s is missing (%v): run scripts/setup.sh", pkg, err)
			}
		}
	case "chromium":
		if p := os.Getenv("CHROMIUM_PATH"); p != "" {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("CHROMIUM_PATH=%s: %v: run scripts/setup.sh", p, err)
			}
			return
		}
		if _, err := os.Stat("/usr/bin/chromium"); err != nil {
			t.Fatalf("/usr/bin/chromium is missing (%v): run scripts/setup.sh", err)
		}
	default:
		if _, err := lookTool(name); err != nil {
			t.Fatalf("%v: run scripts/setup.sh", err)
		}
	}
}

// jsCase is one case of a scripts/js client's report.
type jsCase struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
	Ms     int    `json:"ms"`
}

// jsReport is the JSON object node-client.mjs and chromium-client.mjs print.
type jsReport struct {
	Client  string `json:"client"`
	URL     string `json:"url"`
	Deflate *struct {
		Requested  bool    `json:"requested"`
		Required   bool    `json:"required"`
		Negotiated *bool   `json:"negotiated"`
		Extensions *string `json:"extensions"`
	} `json:"deflate"`
	Extensions     *string  `json:"extensions"` // chromium-client: ws.extensions
	BrowserVersion string   `json:"browserVersion"`
	Cases          []jsCase `json:"cases"`
	Passed         int      `json:"passed"`
	Failed         int      `json:"failed"`
	OK             bool     `json:"ok"`
	Error          string   `json:"error"`

	raw      string
	exitCode int
}

// runJS runs `node scripts/js/SCRIPT ARGS...` with a timeout and parses the JSON
// report from its stdout. It fails the test only if the script could not run or
// printed no report; judging the cases is requireAllPass's job.
func runJS(t testing.TB, timeout time.Duration, script string, args ...string) *jsReport {
	t.Helper()
	requireTool(t, "node")
	requireTool(t, "node_modules")
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(root, "scripts", "js", script)}, args...)...)
	cmd.Dir = filepath.Join(root, "scripts", "js")
	// SIGTERM first so playwright-core closes the browser it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	exitCode := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exitCode = ee.ExitCode()
	default:
		t.Fatalf("node %s %s: %v (after %v)\nstdout:\n%s\nstderr:\n%s", script, strings.Join(args, " "), err, elapsed, stdout.String(), stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s %s: killed after %v timeout\nstdout:\n%s\nstderr:\n%s", script, strings.Join(args, " "), timeout, stdout.String(), stderr.String())
	}
	line := lastLine(stdout.String())
	rep := &jsReport{raw: line, exitCode: exitCode}
	if err := json.Unmarshal([]byte(line), rep); err != nil {
		t.Fatalf("node %s %s (exit %d): no JSON report on stdout: %v\nstdout:\n%s\nstderr:\n%s", script, strings.Join(args, " "), exitCode, err, stdout.String(), stderr.String())
	}
	t.Logf("node %s %s: exit %d in %v, %d passed, %d failed", script, strings.Join(args, " "), exitCode, elapsed, rep.Passed, rep.Failed)
	if exitCode != 0 || !rep.OK {
		t.Logf("report: %s", line)
		if s := strings.TrimSpace(stderr.String()); s != "" {
			t.Logf("stderr:\n%s", s)
		}
	}
	return rep
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// requireAllPass reports every failing case by name (as a separate error), a run
// error, and a report that does not add up with the exit code.
func requireAllPass(t testing.TB, rep *jsReport, wantCases ...string) {
	t.Helper()
	if rep.Error != "" {
		t.Errorf("%s: run error: %s", rep.Client, rep.Error)
	}
	if len(rep.Cases) == 0 {
		t.Errorf("%s: no cases ran", rep.Client)
	}
	for _, c := range rep.Cases {
		if c.Pass {
			t.Logf("ok   %-50s %s (%d ms)", c.Name, c.Detail, c.Ms)
		} else {
			t.Errorf("FAIL %s: %s (%d ms)", c.Name, c.Detail, c.Ms)
		}
	}
	for _, name := range wantCases {
		found := false
		for _, c := range rep.Cases {
			found = found || c.Name == name
		}
		if !found {
			t.Errorf("%s: case %q did not run", rep.Client, name)
		}
	}
	if rep.exitCode != 0 && !t.Failed() {
		t.Errorf("%s: exit code %d although every case passed: %s", rep.Client, rep.exitCode, rep.raw)
	}
}
