//go:build linux

package main_test

// Standard WebSocket tools aimed at `megaws serve`, as users aim them: wscat (the
// websockets org's command-line client) and loadtest (a load generator with a ws://
// mode). Both come from npm through scripts/js/package.json and scripts/setup.sh; a
// missing one fails the test with a pointer to setup.sh, it never skips.
//
// wscat prints only incoming messages and errors when its stdout is not a terminal,
// and reads commands from stdin: the echo tests hold its stdin open (at EOF it quits
// at once), and the tests that need its "Disconnected (code: N ...)" line or its
// slash commands run it on a pseudo-terminal, as a person would.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const npmToolTimeout = 20 * time.Second // one wscat run; each stops itself in about a second

// npmBin returns scripts/js/node_modules/.bin/BIN of npm package PKG, failing the
// test when scripts/setup.sh has not installed it.
func npmBin(t *testing.T, pkg, bin string) string {
	t.Helper()
	requireTool(t, "node")
	js := filepath.Join(repoRoot(t), "scripts", "js")
	if _, err := os.Stat(filepath.Join(js, "node_modules", pkg, "package.json")); err != nil {
		t.Fatalf("npm package %s is not installed in scripts/js/node_modules (%v): run scripts/setup.sh", pkg, err)
	}
	p := filepath.Join(js, "node_modules", ".bin", bin)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v: run scripts/setup.sh", p, err)
	}
	return p
}

// npmToolRun is the outcome of one run of an external tool.
type npmToolRun struct {
	stdout, stderr string
	exitCode       int
	elapsed        time.Duration
}

// runNPMTool runs BIN ARGS... with its stdin an open pipe that is never written to
// (wscat quits as soon as its stdin ends), killing it after timeout.
func runNPMTool(t *testing.T, timeout time.Duration, bin string, args ...string) npmToolRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe() // closed by Wait, after the tool has exited
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	run := npmToolRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start).Round(time.Millisecond)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: killed after %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), timeout, run.stdout, run.stderr)
	case errors.As(err, &ee):
		run.exitCode = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return run
}

// wscatMessages are sent with -x and must come back byte for byte, one per line.
var wscatMessages = []string{
	"hello",
	"héllo wörld ✓ — 多字节",
	`{"type":"join","room":"lobby","seq":1}`,
	strings.Repeat("0123456789abcdef", 64),   // 1 KiB
	strings.Repeat("fedcba9876543210", 4096), // 64 KiB: a 64-bit length header
}

// TestWscatEcho sends messages with `wscat -x` and checks they come back in order,
// that wscat exits 0 with nothing on stderr, and that the server saw one clean
// close (wscat closes with an empty close frame: 1005, never 1006).
func TestWscatEcho(t *testing.T) {
	wscat := npmBin(t, "wscat", "wscat")
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	addr := startMegaws(t, "--loops", "1", "--log-level", "warn", "--admin", admin)
	waitForPort(t, admin, 5*time.Second)

	// wscat closes 0.5 s after sending, but no echo depends on that: the server
	// answers the close frame after the messages before it, so every echo arrives
	// before wscat's close completes.
	args := []string{"-c", "ws://" + addr + "/", "-w", "0.5"}
	for _, m := range wscatMessages {
		args = append(args, "-x", m)
	}
	run := runNPMTool(t, npmToolTimeout, wscat, args...)
	t.Logf("wscat -x ×%d: exit %d in %v, %d bytes out", len(wscatMessages), run.exitCode, run.elapsed, len(run.stdout))
	if run.exitCode != 0 || run.stderr != "" {
		t.Errorf("wscat exit %d, stderr %q; want exit 0 and no stderr", run.exitCode, run.stderr)
	}
	got := strings.Split(strings.TrimSuffix(run.stdout, "\n"), "\n")
	if len(got) != len(wscatMessages) {
		t.Fatalf("wscat printed %d lines, want %d echoes:\n%.2000s", len(got), len(wscatMessages), run.stdout)
	}
	for i, want := range wscatMessages {
		if got[i] != want {
			t.Errorf("echo %d: got %d bytes %.60q, want %d bytes %.60q", i, len(got[i]), got[i], len(want), want)
		}
	}

	m := settledMetrics(t, admin)
	var size float64
	for _, msg := range wscatMessages {
		size += float64(len(msg))
	}
	for name, want := range map[string]float64{
		"megaws_handshakes_accepted_total": 1,
		"megaws_messages_received_total":   float64(len(wscatMessages)),
		"megaws_messages_sent_total":       float64(len(wscatMessages)),
		"megaws_received_bytes_total":      size,
		"megaws_sent_bytes_total":          size,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if c := closeCodeSummary(m); c != `1005×1` {
		t.Errorf("server close codes %s, want 1005×1 (wscat's empty close frame, answered)", c)
	}
}

// settledMetrics scrapes /metrics until every accepted connection is closed and
// its close code counted (the gauge drops a moment before the code is counted),
// for at most 5 s, and returns the last scrape either way: the caller's checks
// say what is off.
func settledMetrics(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, admin)
		var closes float64
		for k, v := range m {
			if strings.HasPrefix(k, "megaws_closes_total{") {
				closes += v
			}
		}
		if (m["megaws_connections"] == 0 && closes == m["megaws_handshakes_accepted_total"]) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closeCodeSummary renders the megaws_closes_total samples as "code×count ...".
func closeCodeSummary(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if code, ok := strings.CutPrefix(k, `megaws_closes_total{code="`); ok && v > 0 {
			parts = append(parts, fmt.Sprintf("%s×%v", strings.TrimSuffix(code, `"}`), v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// TestWscatHandshake runs wscat with the handshake options users reach for: an
// Origin checked against --allowed-origins, extra headers and basic auth (ignored
// by the server), a subprotocol `megaws serve` does not speak, and an old protocol
// version. Each refusal must be the RFC's answer, as wscat reports it.
func TestWscatHandshake(t *testing.T) {
	wscat := npmBin(t, "wscat", "wscat")
	const origin = "https://game.example"
	for _, tc := range []struct {
		name      string
		serveArgs []string
		wscatArgs []string
		wantErr   string // wscat's error line; "" for an echo and exit 0
	}{
		{name: "listed origin", serveArgs: []string{"--allowed-origins", origin}, wscatArgs: []string{"-o", origin}},
		{name: "unlisted origin", serveArgs: []string{"--allowed-origins", origin}, wscatArgs: []string{"-o", "https://evil.example"}, wantErr: "error: Unexpected server response: 403"},
		{name: "no origin while origins are listed", serveArgs: []string{"--allowed-origins", origin}, wantErr: "error: Unexpected server response: 403"},
		{name: "extra headers and basic auth", wscatArgs: []string{"-H", "X-Load-Test: wscat", "-H", "Cookie: session=1", "--auth", "user:secret"}},
		{name: "host header", wscatArgs: []string{"--host", "game.example"}},
		// RFC 6455 §4.2.2: the server picks one of the offered subprotocols or none;
		// `megaws serve` speaks none, so it answers without Sec-WebSocket-Protocol and
		// a client that insists on one (ws, browsers) fails the connection.
		{name: "subprotocol not spoken", wscatArgs: []string{"-s", "chat.v1"}, wantErr: "error: Server sent no subprotocol"},
		// RFC 6455 §4.4: an unsupported version gets 426 with the versions spoken.
		{name: "protocol version 8", wscatArgs: []string{"-p", "8"}, wantErr: "error: Unexpected server response: 426"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startMegaws(t, append([]string{"--loops", "1", "--log-level", "warn"}, tc.serveArgs...)...)
			const msg = "handshake ok"
			args := append([]string{"-c", "ws://" + addr + "/", "-w", "0.3", "-x", msg}, tc.wscatArgs...)
			run := runNPMTool(t, npmToolTimeout, wscat, args...)
			t.Logf("wscat %s: exit %d in %v, stdout %q, stderr %q", strings.Join(tc.wscatArgs, " "), run.exitCode, run.elapsed, run.stdout, run.stderr)
			if tc.wantErr == "" {
				if run.exitCode != 0 || run.stderr != "" || run.stdout != msg+"\n" {
					t.Errorf("want the echo %q and exit 0, got exit %d, stdout %q, stderr %q", msg, run.exitCode, run.stdout, run.stderr)
				}
				return
			}
			if run.exitCode == 0 || strings.TrimSpace(run.stderr) != tc.wantErr || run.stdout != "" {
				t.Errorf("want a failed connection (%q, non-zero exit, no echo), got exit %d, stdout %q, stderr %q", tc.wantErr, run.exitCode, run.stdout, run.stderr)
			}
		})
	}
}

// TestWscatSlashCommands drives interactive wscat on a terminal: a typed line is
// echoed, /ping gets a pong with its payload, /close 4000 is answered with the same
// code, and wscat then exits 0.
func TestWscatSlashCommands(t *testing.T) {
	wscat := npmBin(t, "wscat", "wscat")
	addr := startMegaws(t, "--loops", "1", "--log-level", "warn")
	p := startOnPTY(t, wscat, "-c", "ws://"+addr+"/", "--slash", "--show-ping-pong", "--no-color")
	p.waitFor(t, regexp.MustCompile(`Connected \(press CTRL\+C to quit\)`))
	p.typeLine(t, "typed by hand")
	p.waitFor(t, regexp.MustCompile(`(?m)^< typed by hand$`))
	p.typeLine(t, "/ping pingdata")
	p.waitFor(t, regexp.MustCompile(`(?m)^< Received pong \(data: "pingdata"\)$`))
	p.typeLine(t, "/close 4000 bye now")
	// RFC 6455 §5.5.1: the answer echoes the status code; echoing the reason is optional.
	got := p.waitFor(t, regexp.MustCompile(`(?m)^Disconnected \(code: (\d+), reason: "(.*)"\)$`))
	t.Logf("wscat after /close 4000 bye now: %s", got[0])
	if got[1] != "4000" {
		t.Errorf("server answered close 4000 with code %s, want 4000 echoed", got[1])
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("wscat exit %d after the close handshake, want 0\nscreen:\n%s", code, p.screen())
	}
}

// TestWscatServerStop connects interactive wscat, stops megaws with SIGTERM and
// checks that wscat sees a clean close: code 1001 (going away) with a reason, not
// 1006 (connection dropped), and exits 0; megaws must exit 0 too.
func TestWscatServerStop(t *testing.T) {
	wscat := npmBin(t, "wscat", "wscat")
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	addr := startMegaws(t, "--loops", "1", "--log-level", "warn", "--admin", admin)
	waitForPort(t, admin, 5*time.Second)
	pid := childPID(t, admin)

	p := startOnPTY(t, wscat, "-c", "ws://"+addr+"/", "--no-color")
	p.waitFor(t, regexp.MustCompile(`Connected \(press CTRL\+C to quit\)`))
	p.typeLine(t, "still here")
	p.waitFor(t, regexp.MustCompile(`(?m)^< still here$`))

	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM megaws (pid %d): %v", pid, err)
	}
	got := p.waitFor(t, regexp.MustCompile(`(?m)^Disconnected \(code: (\d+), reason: "(.*)"\)$`))
	took := time.Since(start).Round(time.Millisecond)
	t.Logf("wscat after SIGTERM: %s (after %v)", got[0], took)
	if got[1] != "1001" || got[2] == "" {
		t.Errorf("wscat saw close code %s reason %q, want 1001 with a reason", got[1], got[2])
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("wscat exit %d after the server closed, want 0\nscreen:\n%s", code, p.screen())
	}
	// startMegaws's cleanup checks that megaws exited 0.
}

// childPID reads megaws's pid from /debug/vars and checks that it is a child of
// this test process, so the test only ever signals a server it started.
func childPID(t *testing.T, admin string) int {
	t.Helper()
	pid := readVars(t, admin).PID
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("megaws pid %d from /debug/vars: %v", pid, err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so count from the last ')'.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid %d from /debug/vars is not a child of this test (stat %q)", pid, stat)
	}
	return pid
}

// ptyProc is a program running on a pseudo-terminal: what it prints is read from
// the terminal's master side, and typing is writing to it.
type ptyProc struct {
	cmd    *exec.Cmd
	master *os.File
	out    lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// startOnPTY starts BIN ARGS... with a new terminal as its stdin, stdout and
// stderr (and controlling terminal). Cleanup kills it if it is still running.
func startOnPTY(t *testing.T, bin string, args ...string) *ptyProc {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	p := &ptyProc{master: master, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	p.cmd.Env = append(os.Environ(), "TERM=xterm", "COLUMNS=200", "LINES=50")
	if err := p.cmd.Start(); err != nil {
		_ = master.Close()
		_ = slave.Close()
		t.Fatalf("start %s on a terminal: %v", bin, err)
	}
	_ = slave.Close() // the child holds it now; the master reads EIO once the child is gone
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _ = io.Copy(&p.out, master)
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		select {
		case <-readDone:
		case <-time.After(2 * time.Second):
		}
		_ = master.Close()
		<-readDone
		if t.Failed() {
			t.Logf("%s %s on a terminal, screen:\n%s", filepath.Base(bin), strings.Join(args, " "), p.screen())
		}
	})
	return p
}

// openPTY opens a new pseudo-terminal pair (Linux /dev/ptmx), 50×200.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n int
	rc, err := master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err != nil {
				return
			}
			if err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 200}); err != nil {
				return
			}
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		})
		if err == nil {
			err = cerr
		}
	}
	if err == nil {
		slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	}
	if err != nil {
		_ = master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// typeLine types line and Enter.
func (p *ptyProc) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := p.master.Write([]byte(line + "\r")); err != nil {
		t.Fatalf("type %q: %v", line, err)
	}
}

// screen is what the program printed, without terminal control sequences, one
// printed line per line.
func (p *ptyProc) screen() string {
	s := ansiRE.ReplaceAllString(p.out.String(), "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		// wscat redraws its "> " prompt with a carriage return before each line it prints.
		if i := strings.LastIndexByte(l, '\r'); i >= 0 && i < len(l)-1 {
			l = l[i+1:]
		}
		l = strings.TrimRight(l, "\r")
		lines = append(lines, strings.TrimPrefix(l, "> "))
	}
	return strings.Join(lines, "\n")
}

// waitFor waits up to npmToolTimeout for re to match the screen and returns the match.
func (p *ptyProc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(npmToolTimeout)
	for {
		if m := re.FindStringSubmatch(p.screen()); m != nil {
			return m
		}
		select {
		case <-deadline:
			t.Fatalf("no %q on the terminal within %v; screen:\n%s", re, npmToolTimeout, p.screen())
		case <-p.exited:
			time.Sleep(100 * time.Millisecond) // let the reader drain the last output
			if m := re.FindStringSubmatch(p.screen()); m != nil {
				return m
			}
			t.Fatalf("program exited (%v) before printing %q; screen:\n%s", p.err, re, p.screen())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// wait waits up to npmToolTimeout for the program to exit and returns its exit code.
func (p *ptyProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(npmToolTimeout):
		t.Fatalf("still running %v later; screen:\n%s", npmToolTimeout, p.screen())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// loadtestReport holds the figures of loadtest's closing report.
type loadtestReport struct {
	clients, completed, errors, rps int
	seconds, meanLatencyMs          float64
	latencies                       string // the "Percentage of requests served within..." table
}

var (
	loadtestClientsRE   = regexp.MustCompile(`(?m)^Concurrent clients:\s+(\d+)$`)
	loadtestCompletedRE = regexp.MustCompile(`(?m)^Completed requests:\s+(\d+)$`)
	loadtestErrorsRE    = regexp.MustCompile(`(?m)^Total errors:\s+(\d+)$`)
	loadtestTimeRE      = regexp.MustCompile(`(?m)^Total time:\s+([0-9.]+) s$`)
	loadtestLatencyRE   = regexp.MustCompile(`(?m)^Mean latency:\s+([0-9.]+) ms$`)
	loadtestRPSRE       = regexp.MustCompile(`(?m)^Effective rps:\s+(\d+)$`)
	loadtestTableRE     = regexp.MustCompile(`(?s)Percentage of requests served within a certain time\n(.*)$`)
)

// parseLoadtest reads loadtest's report from its stdout; every figure must be there.
func parseLoadtest(t *testing.T, out string) loadtestReport {
	t.Helper()
	num := func(re *regexp.Regexp) float64 {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("loadtest report has no line matching %q (a new loadtest version?):\n%s", re, out)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("loadtest report: %q: %v", m[0], err)
		}
		return v
	}
	r := loadtestReport{
		clients:       int(num(loadtestClientsRE)),
		completed:     int(num(loadtestCompletedRE)),
		errors:        int(num(loadtestErrorsRE)),
		rps:           int(num(loadtestRPSRE)),
		seconds:       num(loadtestTimeRE),
		meanLatencyMs: num(loadtestLatencyRE),
	}
	if m := loadtestTableRE.FindStringSubmatch(out); m != nil {
		r.latencies = strings.Trim(m[1], "\n")
	}
	return r
}

// loadtestNoise matches the warnings loadtest 8's own WebSocket client causes: it
// adds a message, close and error listener to a connection for every request it
// sends, so Node warns about a possible listener leak once a connection has sent
// ten. The warnings are about the tool, not the server; any other stderr line fails.
var loadtestNoise = regexp.MustCompile(`MaxListenersExceededWarning|^\(Use .node --trace-warnings`)

// TestLoadToolLoadtestEcho aims `loadtest` (npm) at `megaws serve --loops 1` in
// echo mode, as the user with the tcpkali report did: 200 WebSocket clients, each
// sending a 1 KiB text message (a JSON string) and waiting for its echo before the
// next, until 30,000 round trips completed. From loadtest's own report: 200
// clients, every request completed, no errors. From the server's counters:
// exactly 200 upgrades (no re-dials), every message received was echoed, and every
// connection ended with loadtest's close 1000. loadtest's throughput and latency
// are logged, never asserted.
func TestLoadToolLoadtestEcho(t *testing.T) {
	loadtest := npmBin(t, "loadtest", "loadtest")
	const (
		clients = 200
		total   = 30_000
		size    = 1024
	)
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	addr := startMegaws(t, "--loops", "1", "--log-level", "warn", "--admin", admin)
	waitForPort(t, admin, 5*time.Second)

	// loadtest's WebSocket client sends JSON.stringify(--data) as a text message and
	// parses every answer as JSON: 1022 letters go out as a 1024-byte JSON string.
	body := strings.Repeat("x", size-2)
	run := runNPMTool(t, 90*time.Second, loadtest,
		"--cores", "1", // one process: --cores forks workers that each open -c clients
		"-c", strconv.Itoa(clients),
		"-n", strconv.Itoa(total),
		"-t", "60", // a bound only: stopping on time instead of on -n fails the test
		"--data", body,
		"ws://"+addr+"/")
	var noise, stderr []string
	for _, line := range strings.Split(strings.TrimSpace(run.stderr), "\n") {
		switch {
		case line == "":
		case loadtestNoise.MatchString(line):
			noise = append(noise, line)
		default:
			stderr = append(stderr, line)
		}
	}
	if run.exitCode != 0 || len(stderr) > 0 {
		t.Errorf("loadtest exit %d, stderr:\n%s", run.exitCode, strings.Join(stderr, "\n"))
	}
	r := parseLoadtest(t, run.stdout)
	t.Logf("loadtest -c %d -n %d, %d-byte messages: %d round trips in %.3f s = %d messages/s each way, mean latency %.1f ms (loadtest ran %v; %d listener-leak warnings from loadtest's client)",
		clients, total, size, r.completed, r.seconds, r.rps, r.meanLatencyMs, run.elapsed, len(noise))
	t.Logf("loadtest latency percentiles:\n%s", r.latencies)
	if r.clients != clients || r.completed != total || r.errors != 0 {
		t.Errorf("loadtest report: %d clients, %d completed, %d errors; want %d, %d, 0\n%s", r.clients, r.completed, r.errors, clients, total, run.stdout)
	}

	m := settledMetrics(t, admin)
	in, out := m["megaws_messages_received_total"], m["megaws_messages_sent_total"]
	t.Logf("megaws: %v upgrades, %v messages in, %v out, closes %s", m["megaws_handshakes_accepted_total"], in, out, closeCodeSummary(m))
	if got := m["megaws_handshakes_accepted_total"]; got != clients {
		t.Errorf("megaws accepted %v upgrades, want %d: one per loadtest client, no re-dials", got, clients)
	}
	if c := closeCodeSummary(m); c != fmt.Sprintf("1000×%d", clients) {
		t.Errorf("close codes %s, want 1000×%d (loadtest closes every connection normally)", c, clients)
	}
	// loadtest stops counting at -n while up to one request per other client is in
	// flight; the server has seen and answered those too.
	if in < total || in > total+clients-1 || out != in {
		t.Errorf("megaws received %v messages and sent %v, want equal and in [%d, %d]", in, out, total, total+clients-1)
	}
	if b := m["megaws_received_bytes_total"]; b != in*size || m["megaws_sent_bytes_total"] != b {
		t.Errorf("megaws received %v bytes and sent %v for %v messages of %d bytes", b, m["megaws_sent_bytes_total"], in, size)
	}
	for name, v := range m {
		if v != 0 && (strings.HasPrefix(name, "megaws_handshakes_rejected_total") || strings.HasPrefix(name, "megaws_protocol_errors_total") ||
			strings.HasPrefix(name, "megaws_handler_panics_total") || name == "megaws_write_queue_drops_total" || name == "megaws_fd_shed_total") {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
}
