package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runWorkers starts f.workers copies of this program, each a full server with
// SO_REUSEPORT on the same address, so the kernel spreads connections over
// them. It exists for hosts whose per-process open-files limit is below the
// target connection count; signals are forwarded and the parent exits when all
// children have.
func runWorkers(f *serveFlags, args []string, stdout, stderr io.Writer, log *slog.Logger) int {
	if strings.HasSuffix(f.addr, ":0") {
		fmt.Fprintln(stderr, "megaws serve: --workers needs an explicit port")
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "megaws serve:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	var children []*exec.Cmd
	var readyPipes []*os.File
	for i := 1; i <= f.workers; i++ {
		cmd := exec.Command(exe, append([]string{"serve"}, append(args, "--worker-index", strconv.Itoa(i))...)...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// The worker writes a byte to its readiness pipe (its fd 3) once
		// it listens and has its signal handlers: only then does this
		// process say it is listening.
		r, w, err := os.Pipe()
		if err == nil {
			cmd.ExtraFiles = []*os.File{w}
			cmd.Env = append(os.Environ(), readyFDEnv+"=3")
			err = cmd.Start()
			_ = w.Close()
		}
		if err != nil {
			fmt.Fprintln(stderr, "megaws serve: start worker:", err)
			stopAll(children, syscall.SIGTERM)
			return 1
		}
		children = append(children, cmd)
		readyPipes = append(readyPipes, r)
	}
	for i, r := range readyPipes {
		// A worker that exits before it is ready closes the pipe: the
		// read returns EOF at once. The deadline bounds a hung start.
		_ = r.SetReadDeadline(time.Now().Add(time.Minute))
		n, _ := r.Read(make([]byte, 1))
		_ = r.Close()
		if n != 1 {
			fmt.Fprintf(stderr, "megaws serve: worker %d (pid %d) did not start\n", i+1, children[i].Process.Pid)
			stopAll(children, syscall.SIGTERM)
			for _, c := range children {
				_ = c.Wait()
			}
			return 1
		}
	}
	pids := make([]string, len(children))
	for i, c := range children {
		pids[i] = strconv.Itoa(c.Process.Pid)
	}
	fmt.Fprintf(stdout, "megaws: listening on %s (mode %s, loops %d, workers %d, pids %s)\n",
		f.addr, f.mode, f.loops, f.workers, strings.Join(pids, ","))

	done := make(chan struct{})
	var wg sync.WaitGroup
	failed := 0
	var mu sync.Mutex
	for _, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Wait(); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				log.Warn("worker exited", "pid", c.Process.Pid, "err", err)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case s := <-sig:
		stopAll(children, s.(syscall.Signal))
		<-done
	case <-done:
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func stopAll(children []*exec.Cmd, s syscall.Signal) {
	for _, c := range children {
		_ = c.Process.Signal(s)
	}
}

// readyFDEnv names the descriptor on which a --workers child reports that
// it is ready.
const readyFDEnv = "MEGAWS_WORKER_READY_FD"

// workerReady tells the --workers parent that this worker listens.
func workerReady() {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	_, _ = f.Write([]byte{1})
	_ = f.Close()
}
