package main_test

// wss:// deployment: nginx terminates TLS and proxies the Upgrade to megaws, built
// from the server block users copy (scripts/nginx/megaws.conf) by
// scripts/nginx/run-test-nginx.sh. Real clients then talk to megaws through it.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startTestNginx runs run-test-nginx.sh UPSTREAM PORT DIR and returns the TLS
// address and the self-signed certificate it serves. Cleanup stops nginx by PID:
// SIGQUIT (graceful), then SIGTERM, then SIGKILL.
func startTestNginx(t *testing.T, upstream string) (addr, certFile string) {
	t.Helper()
	requireTool(t, "nginx")
	requireTool(t, "openssl")
	root := repoRoot(t)
	dir := t.TempDir()
	port := freePort(t)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	script := filepath.Join(root, "scripts", "nginx", "run-test-nginx.sh")
	cmd := exec.Command("bash", script, upstream, strconv.Itoa(port), dir)
	var output lockedBuffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	// nginx lives in /usr/sbin, which a non-login shell's PATH may lack.
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b)
	}
	stopped := false
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if stopped {
			return
		}
		pid := cmd.Process.Pid // the script execs nginx: this is the master
		for _, step := range []struct {
			sig  os.Signal
			wait time.Duration
		}{
			{sig: syscall.SIGQUIT, wait: 8 * time.Second}, // worker_shutdown_timeout is 5 s
			{sig: syscall.SIGTERM, wait: 3 * time.Second},
			{sig: syscall.SIGKILL, wait: 3 * time.Second},
		} {
			if err := cmd.Process.Signal(step.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Logf("signal %v to nginx pid %d: %v", step.sig, pid, err)
			}
			select {
			case <-exited:
				if t.Failed() {
					t.Logf("nginx output:\n%s\nnginx error.log:\n%s", output.String(), errorLog())
				}
				return
			case <-time.After(step.wait):
				t.Logf("nginx pid %d still running %v after %v", pid, step.wait, step.sig)
			}
		}
		t.Errorf("nginx pid %d did not exit even after SIGKILL", pid)
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("run-test-nginx.sh exited before listening on %s: %v\noutput:\n%s\nerror.log:\n%s", addr, err, output.String(), errorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not accepting on %s after 20 s: %v\noutput:\n%s\nerror.log:\n%s", addr, err, output.String(), errorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("nginx (pid %d) on https://%s -> %s, config in %s", cmd.Process.Pid, addr, upstream, dir)
	return addr, filepath.Join(dir, "cert.pem")
}

func TestWSSThroughNginx(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	requireTool(t, "nginx")
	requireTool(t, "openssl")
	upstream := startMegaws(t)
	addr, cert := startTestNginx(t, upstream)
	wssURL := "wss://" + addr + "/"

	t.Run("healthz over https", func(t *testing.T) {
		code, body, err := httpsGet(cert, "https://"+addr+"/healthz")
		if err != nil {
			t.Fatalf("GET /healthz through nginx: %v", err)
		}
		if code != http.StatusOK {
			t.Errorf("GET /healthz through nginx: status %d, want 200; body %q", code, body)
		}
	})
	t.Run("node ws", func(t *testing.T) {
		rep := runJS(t, jsTimeout, "node-client.mjs", wssURL, "--ca", cert, "--timeout", "60")
		requireAllPass(t, rep, nodeCases...)
	})
	t.Run("chromium", func(t *testing.T) {
		rep := runJS(t, jsTimeout, "chromium-client.mjs", wssURL, "--insecure", "--timeout", "60")
		requireAllPass(t, rep, chromiumCases...)
		t.Logf("chromium %s through nginx, negotiated extensions %q", rep.BrowserVersion, deref(rep.Extensions))
	})
}

// httpsGet fetches url trusting only certFile.
func httpsGet(certFile, url string) (int, string, error) {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return 0, "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return 0, "", fmt.Errorf("no certificate in %s", certFile)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}
