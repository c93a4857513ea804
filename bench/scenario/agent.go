package scenario

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/client/loop"
)

// An agent is one load-generator process's share of an idle run: it opens
// connections, holds them, echoes a sample on request and closes them. The
// in-process Agent and the remoteAgent (a child "megaws-bench agent"
// process driven over stdin/stdout) do the same thing, so a run above one
// process's open-files limit is the same run spread over processes.
type agent interface {
	Dial(n int)
	Counters() loop.Counters
	Errors() map[string]int64
	// ServerCloses counts the connections the server closed with a close
	// frame that the load generator answered, by the error message they
	// ended with (also counted in Counters.Dropped and Errors).
	ServerCloses() map[string]int64
	// Refresh brings Counters, Errors and ServerCloses up to date.
	Refresh()
	Sample(fraction float64, timeout time.Duration) (SampleResult, error)
	CloseAll(timeout time.Duration)
	RSS() int64
	// PID is the agent's process; 0 for this one.
	PID() int
	Stop()
}

// SampleResult is a liveness sample: one 64-byte verified echo on a fraction
// of the open connections.
type SampleResult struct {
	Sampled int64                  `json:"sampled"`
	OK      int64                  `json:"ok"`
	Failed  int64                  `json:"failed"` // wrong echo, connection lost, or no answer in time
	Latency Latency                `json:"latency"`
	Hist    *hdrhistogram.Snapshot `json:"hist,omitempty"`
}

const sampleSize = 64

type sampleHandler struct {
	loop.NopHandler
	l        *loop.Loop
	buf      []byte
	hist     *hdrhistogram.Histogram
	sent     int64
	ok, fail int64
	closes   closeCount
}

// closeCount counts connections the server closed with a close frame.
// client/loop answers such a frame with a close frame carrying the same
// code before it closes the socket (RFC 6455 §5.5.1), and then reports a
// *client.CloseError with Remote set; a connection whose answer could not
// be written ends with the write error instead and is not counted here.
type closeCount struct {
	mu sync.Mutex
	by map[string]int64 // by error message
}

func (c *closeCount) add(err error) {
	var ce *client.CloseError
	if !errors.As(err, &ce) || !ce.Remote || ce.Err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]int64{}
	}
	if msg := err.Error(); c.by[msg] > 0 || len(c.by) < 16 {
		c.by[msg]++
	} else {
		c.by["(other close frames)"]++
	}
}

func (c *closeCount) addTo(m map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.by {
		m[k] += v
	}
}

func (h *sampleHandler) start(fraction float64) {
	step := 1
	if fraction > 0 && fraction < 1 {
		step = int(1/fraction + 0.5)
	}
	for i, c := range h.l.Open() {
		if i%step != 0 {
			continue
		}
		stamp := time.Now().UnixNano()
		st := loadgen.StateOf(c)
		st.Sample, st.Stamps = true, []int64{stamp}
		loadgen.FillPayload(h.buf, st.Seq, stamp)
		c.Send(ws.OpBinary, h.buf)
		h.sent++
	}
}

func (h *sampleHandler) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	st, _ := c.Context().(*loadgen.State)
	if st == nil || !st.Sample {
		loadgen.VerifyFailed(c, fmt.Errorf("verify: unexpected %d-byte message on an idle connection", len(p)))
		return
	}
	if err := loadgen.CheckPayload(p, sampleSize, st.Seq, st.Stamps[0]); err != nil {
		h.fail++
		st.Sample = false
		loadgen.VerifyFailed(c, err)
		return
	}
	_ = h.hist.RecordValue((time.Now().UnixNano() - st.Stamps[0]) / 1e3)
	st.Seq++
	st.Sample, st.Stamps = false, nil
	h.ok++
}

func (h *sampleHandler) OnClose(c *loop.Conn, err error) {
	if st, _ := c.Context().(*loadgen.State); st != nil && st.Sample {
		h.fail++
	}
	h.closes.add(err)
}

// Agent is the in-process agent.
type Agent struct {
	cl *loop.Pool
	hs []*sampleHandler
}

// NewAgent starts an agent dialing addr.
func NewAgent(addr string, lo Load) (*Agent, error) {
	a := &Agent{}
	cl, err := loop.New(lo.config(addr), func(l *loop.Loop) loop.Handler {
		h := &sampleHandler{l: l, buf: make([]byte, sampleSize), hist: loadgen.NewHistogram()}
		a.hs = append(a.hs, h)
		return h
	})
	if err != nil {
		return nil, err
	}
	a.cl = cl
	return a, nil
}

func (a *Agent) Dial(n int)                     { a.cl.Dial(n) }
func (a *Agent) Counters() loop.Counters        { return a.cl.Counters() }
func (a *Agent) Errors() map[string]int64       { return a.cl.Errors() }
func (a *Agent) RSS() int64                     { return 0 } // counted with the harness process
func (a *Agent) PID() int                       { return 0 }
func (a *Agent) Refresh()                       {}
func (a *Agent) Stop()                          { a.cl.Close() }
func (a *Agent) CloseAll(timeout time.Duration) { closeClient(a.cl, timeout) }

// ServerCloses counts the close frames the server sent first and the
// agent answered, by the message the connections ended with.
func (a *Agent) ServerCloses() map[string]int64 {
	m := map[string]int64{}
	for _, h := range a.hs {
		h.closes.addTo(m)
	}
	return m
}

// Sample echoes one message on a fraction of the open connections and waits
// up to timeout for the answers.
func (a *Agent) Sample(fraction float64, timeout time.Duration) (SampleResult, error) {
	a.cl.Each(func(l *loop.Loop) {
		h := a.hs[l.Index()]
		h.sent, h.ok, h.fail = 0, 0, 0
		h.hist.Reset()
		h.start(fraction)
	})
	var r SampleResult
	deadline := time.Now().Add(timeout)
	for {
		r = SampleResult{}
		hist := loadgen.NewHistogram()
		a.cl.Each(func(l *loop.Loop) {
			h := a.hs[l.Index()]
			r.Sampled += h.sent
			r.OK += h.ok
			r.Failed += h.fail
			hist.Merge(h.hist)
		})
		if r.OK+r.Failed >= r.Sampled || time.Now().After(deadline) {
			r.Failed = r.Sampled - r.OK
			r.Latency = LatencyOf(hist)
			r.Hist = hist.Export()
			return r, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// agentMsg is one line of the agent protocol, in either direction.
type agentMsg struct {
	Op       string           `json:"op,omitempty"`   // to the agent: dial, sample, close, status, exit
	Type     string           `json:"type,omitempty"` // from the agent: status (fresh: true in answer to op status), sample, closed
	N        int              `json:"n,omitempty"`
	Fraction float64          `json:"fraction,omitempty"`
	Timeout  time.Duration    `json:"timeout,omitempty"`
	Counters *loop.Counters   `json:"counters,omitempty"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	RSS      int64            `json:"rss,omitempty"`
	Sample   *SampleResult    `json:"sample,omitempty"`
	// ServerCloses are Agent.ServerCloses.
	ServerCloses map[string]int64 `json:"server_closes,omitempty"`
	Fresh        bool             `json:"fresh,omitempty"`
}

// ServeAgent runs an agent process: commands come as JSON lines on in,
// status (every 250 ms) and replies go as JSON lines to out. It returns when
// told to exit or when in is closed (the harness went away).
func ServeAgent(in io.Reader, out io.Writer, addr string, lo Load) error {
	a, err := NewAgent(addr, lo)
	if err != nil {
		return err
	}
	defer a.Stop()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m agentMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	status := func(fresh bool) {
		c := a.Counters()
		send(agentMsg{Type: "status", Counters: &c, Errors: a.Errors(), ServerCloses: a.ServerCloses(), RSS: SelfRSS(), Fresh: fresh})
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				status(false)
			}
		}
	}()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var m agentMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("agent: bad command %q: %w", sc.Text(), err)
		}
		switch m.Op {
		case "dial":
			a.Dial(m.N)
		case "sample":
			r, _ := a.Sample(m.Fraction, m.Timeout)
			send(agentMsg{Type: "sample", Sample: &r})
		case "close":
			a.CloseAll(m.Timeout)
			status(false)
			send(agentMsg{Type: "closed"})
		case "status":
			status(true)
		case "exit":
			status(false)
			return nil
		default:
			return fmt.Errorf("agent: unknown op %q", m.Op)
		}
	}
	return sc.Err()
}

// remoteAgent drives a "megaws-bench agent" child process.
type remoteAgent struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	last    agentMsg
	samples chan SampleResult
	closed  chan struct{}
	fresh   chan struct{}
	exited  chan struct{}
	stderr  *tailBuffer
}

// startRemoteAgent starts the harness binary (self) as an agent.
func startRemoteAgent(self []string, addr string, offset int, lo Load, cpus []int) (*remoteAgent, error) {
	args := append(append([]string(nil), self[1:]...), "agent", "--addr", addr, "--source-offset", strconv.Itoa(offset), "--loops", strconv.Itoa(max(lo.Loops, 1)))
	if lo.MaxPending > 0 {
		args = append(args, "--pending", strconv.Itoa(lo.MaxPending))
	}
	if lo.HandshakeTimeout > 0 {
		args = append(args, "--handshake-timeout", lo.HandshakeTimeout.String())
	}
	cmd := exec.Command(self[0], args...)
	if len(cpus) > 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(ts, append([]string{"-c", cpuList(cpus), self[0]}, args...)...)
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r := &remoteAgent{cmd: cmd, samples: make(chan SampleResult, 1), closed: make(chan struct{}, 1), fresh: make(chan struct{}, 1), exited: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10}}
	cmd.Stderr = r.stderr
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m agentMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch m.Type {
			case "status":
				r.mu.Lock()
				r.last = m
				r.mu.Unlock()
				if m.Fresh {
					select {
					case r.fresh <- struct{}{}:
					default:
					}
				}
			case "sample":
				if m.Sample != nil {
					r.samples <- *m.Sample
				}
			case "closed":
				r.closed <- struct{}{}
			}
		}
		_ = cmd.Wait()
		close(r.exited)
	}()
	return r, nil
}

func (r *remoteAgent) command(m agentMsg) {
	b, _ := json.Marshal(m)
	_, _ = r.stdin.Write(append(b, '\n'))
}

func (r *remoteAgent) Dial(n int) { r.command(agentMsg{Op: "dial", N: n}) }

func (r *remoteAgent) Counters() loop.Counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.Counters == nil {
		return loop.Counters{}
	}
	return *r.last.Counters
}

func (r *remoteAgent) Errors() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int64{}
	for k, v := range r.last.Errors {
		m[k] = v
	}
	select {
	case <-r.exited:
		m["agent process exited: "+r.stderr.String()]++
	default:
	}
	return m
}

func (r *remoteAgent) ServerCloses() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int64{}
	for k, v := range r.last.ServerCloses {
		m[k] = v
	}
	return m
}

// Refresh asks the agent for its status and waits up to 5 s for it.
func (r *remoteAgent) Refresh() {
	select {
	case <-r.fresh: // a stale answer
	default:
	}
	r.command(agentMsg{Op: "status"})
	select {
	case <-r.fresh:
	case <-r.exited:
	case <-time.After(5 * time.Second):
	}
}

func (r *remoteAgent) PID() int { return r.cmd.Process.Pid }

func (r *remoteAgent) RSS() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.RSS
}

func (r *remoteAgent) Sample(fraction float64, timeout time.Duration) (SampleResult, error) {
	r.command(agentMsg{Op: "sample", Fraction: fraction, Timeout: timeout})
	select {
	case s := <-r.samples:
		return s, nil
	case <-r.exited:
		return SampleResult{}, fmt.Errorf("agent exited: %s", r.stderr.String())
	case <-time.After(timeout + 30*time.Second):
		return SampleResult{}, fmt.Errorf("agent did not answer the sample")
	}
}

func (r *remoteAgent) CloseAll(timeout time.Duration) {
	r.command(agentMsg{Op: "close", Timeout: timeout})
	select {
	case <-r.closed:
	case <-r.exited:
	case <-time.After(timeout + 30*time.Second):
	}
}

func (r *remoteAgent) Stop() {
	r.command(agentMsg{Op: "exit"})
	_ = r.stdin.Close()
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}
