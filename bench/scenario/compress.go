package scenario

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// The compress scenario: what permessage-deflate (RFC 7692) saves on the
// wire and costs the server, for the small repetitive messages of a game
// backend. Each connection offers what browsers and Node's ws offer by
// default ("permessage-deflate; client_max_window_bits"), compresses every
// message it sends as the server's answer allows (context takeover and
// window included, with codec's window compressor at zlib's default level 6,
// as browsers do), keeps one message in flight and checks every echo after
// decompressing it. Bytes on the wire are counted at the client's sockets.
//
// Kind "broadcast" is the broadcast side of the same traffic: the server in
// broadcast mode, one connection publishing game ticks with a few in
// flight, every connection (the publisher included) receiving, inflating
// and checking each one in order; the figure that counts is the server's
// CPU per delivery, with and without a window per connection to compress
// against.

// CompressionOff is a CompressConfig.Window for a server without
// permessage-deflate.
const CompressionOff = -1

// CompressOffer is the Sec-WebSocket-Extensions offer of the compress
// scenario's clients: Chromium's and Node ws's default.
const CompressOffer = "permessage-deflate; client_max_window_bits"

// CompressConfig is one compress measurement.
type CompressConfig struct {
	// Kind is the traffic: "game" (a game tick as JSON, about 400 bytes,
	// positions drifting between ticks) or "chat" (a chat line in a JSON
	// envelope, about 100 bytes, from a few hundred phrases), echoed; or
	// "broadcast" (game ticks published to every connection).
	Kind string `json:"kind"`
	// Window is the server's compression setting: CompressionOff, 0 (no
	// context takeover) or 8 to 15 (takeover with that window).
	Window   int           `json:"window"`
	Conns    int           `json:"conns"`
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
	// Inflight is, for "broadcast", how many published messages may be on
	// their way to some connection at once (default 4).
	Inflight int `json:"inflight,omitempty"`
}

// CompressKinds are the kinds of traffic of the compress scenario.
var CompressKinds = []string{"game", "chat", "broadcast"}

// CompressMode is the server mode a kind of traffic needs.
func CompressMode(kind string) string {
	if kind == "broadcast" {
		return "broadcast"
	}
	return "echo"
}

// WindowLabel names a compression setting.
func WindowLabel(w int) string {
	switch w {
	case CompressionOff:
		return "off"
	case 0:
		return "no takeover"
	}
	return fmt.Sprintf("takeover, %d-bit window", w)
}

// CompressResult is what RunCompress measured over the measured window.
type CompressResult struct {
	Config CompressConfig `json:"config"`
	// ServerSetting is how the server was configured (its flags or options).
	ServerSetting string `json:"server_setting"`
	// Extensions is the Sec-WebSocket-Extensions the server answered.
	Extensions string  `json:"extensions"`
	Seconds    float64 `json:"seconds"`
	RoundTrips int64   `json:"round_trips"`
	PerSec     float64 `json:"round_trips_per_sec"`
	// PayloadBytes is the payload echoed, each way; MeanSize per message.
	PayloadBytes int64   `json:"payload_bytes"`
	MeanSize     float64 `json:"mean_size"`
	// WireUp and WireDown are the TCP bytes from clients to the server and
	// back (frame headers and masks included); the ratios are to the
	// payload, 1.0 for uncompressed traffic plus framing.
	WireUp    int64   `json:"wire_up"`
	WireDown  int64   `json:"wire_down"`
	RatioUp   float64 `json:"ratio_up"`
	RatioDown float64 `json:"ratio_down"`
	// CompressedDown is the fraction of the server's messages that came
	// compressed (RSV1).
	CompressedDown   float64 `json:"compressed_down"`
	Latency          Latency `json:"latency"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// ServerCPUPerMsg is server user+sys µs per echoed message: inflating
	// the client's message and compressing the echo.
	ServerCPUPerMsg  float64 `json:"server_cpu_per_msg_us"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// ClientCPUPerMsg is the load generator's µs per message (per delivery
	// for "broadcast"): when it nears 1e6/PerSec, the clients, not the
	// server, set the pace.
	ClientCPUPerMsg float64          `json:"client_cpu_per_msg_us"`
	PeakRSS         int64            `json:"peak_rss"`
	Errors          map[string]int64 `json:"errors,omitempty"`

	// Broadcast runs: the messages published and their deliveries to every
	// connection in the measured window, and server µs per delivery. The
	// latency is from the publish to the last connection's receipt; PerSec
	// is published messages per second, RatioUp the publisher's.
	Published            int64   `json:"published,omitempty"`
	Deliveries           int64   `json:"deliveries,omitempty"`
	DeliveriesPerSec     float64 `json:"deliveries_per_sec,omitempty"`
	ServerCPUPerDelivery float64 `json:"server_cpu_per_delivery_us,omitempty"`
}

// StartCompressed starts t in mode (echo or broadcast) with compression
// window (see CompressConfig.Window): megaws with --compression,
// --compression-window and a 32-byte --compression-threshold, so that chat
// lines are compressed too; a peer with -compression (through
// MEGAWS_PEER_COMPRESSION, which peers take as its default). It returns the
// server and a description of its setting.
func StartCompressed(ctx context.Context, env *Env, t Target, window int, mode string) (*Server, string, error) {
	if t.Kind == "megaws" {
		e := *env
		setting := "(no flags)"
		if window != CompressionOff {
			args := []string{"--compression", "--compression-threshold", "32", "--compression-window", strconv.Itoa(window)}
			e.MegawsArgs = append(append([]string(nil), env.MegawsArgs...), args...)
			setting = strings.Join(args, " ")
		}
		s, err := e.Start(ctx, t, mode)
		return s, setting, err
	}
	v := "off"
	if window != CompressionOff {
		v = strconv.Itoa(window)
	}
	old, had := os.LookupEnv(peerCompressionEnv)
	_ = os.Setenv(peerCompressionEnv, v)
	defer func() {
		if had {
			_ = os.Setenv(peerCompressionEnv, old)
		} else {
			_ = os.Unsetenv(peerCompressionEnv)
		}
	}()
	s, err := env.Start(ctx, t, mode)
	return s, "-compression " + v, err
}

// peerCompressionEnv is peercmd.CompressionEnv (peers/internal is not
// importable from here).
const peerCompressionEnv = "MEGAWS_PEER_COMPRESSION"

// RunCompress opens cfg.Conns connections to srv (an echo server started by
// StartCompressed), echoes cfg.Kind messages on each for cfg.Duration after
// cfg.Warmup and closes them.
func RunCompress(ctx context.Context, srv *Server, cfg CompressConfig, progress io.Writer) (*CompressResult, error) {
	if cfg.Kind == "broadcast" {
		return runCompressBroadcast(ctx, srv, cfg, progress)
	}
	gen, err := compressGenerator(cfg.Kind)
	if err != nil {
		return nil, err
	}
	p := newProgress(progress)
	label := fmt.Sprintf("compress %s %s %s c=%d", srv.Target.Name, WindowLabel(cfg.Window), cfg.Kind, cfg.Conns)
	var wire zWire
	clients := make([]*zClient, cfg.Conns)
	for i := range clients {
		c, err := dialZ(ctx, srv.Addr, i, &wire)
		if err != nil {
			for _, c := range clients[:i] {
				c.close()
			}
			return nil, fmt.Errorf("%s: connection %d: %w", label, i, err)
		}
		clients[i] = c
	}
	res := &CompressResult{Config: cfg, Extensions: clients[0].ext}
	if cfg.Window != CompressionOff && !clients[0].deflate {
		for _, c := range clients {
			c.close()
		}
		return res, fmt.Errorf("%s: the server did not accept %q (Sec-WebSocket-Extensions %q)", label, CompressOffer, clients[0].ext)
	}

	var (
		running atomic.Bool
		record  atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    = map[string]int64{}
		hist    = hdrhistogram.New(1, 60_000_000, 3)
	)
	running.Store(true)
	for i, c := range clients {
		wg.Go(func() {
			h := hdrhistogram.New(1, 60_000_000, 3)
			r := mrand.New(mrand.NewPCG(uint64(i), 7))
			for seq := 0; running.Load(); seq++ {
				msg := gen(r, seq)
				start := time.Now()
				if err := c.echo(msg); err != nil {
					mu.Lock()
					errs[err.Error()]++
					mu.Unlock()
					return
				}
				if record.Load() {
					_ = h.RecordValue(time.Since(start).Microseconds())
					wire.msgs.Add(1)
					wire.payload.Add(int64(len(msg)))
				}
			}
			mu.Lock()
			hist.Merge(h)
			mu.Unlock()
		})
	}
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		running.Store(false)
		wg.Wait()
		return nil, err
	}
	record.Store(true)
	up0, down0, z0, n0 := wire.up.Load(), wire.down.Load(), wire.zdown.Load(), wire.framesDown.Load()
	cpu0, self0, t0 := srv.CPU(), SelfCPU(), time.Now()
	peak := srv.RSS()
	for end := t0.Add(cfg.Duration); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			break
		}
		peak = max(peak, srv.RSS())
		el := time.Since(t0).Seconds()
		p.show(false, "%s: %.0f msg/s, %.1fs", label, float64(wire.msgs.Load())/el, el)
	}
	record.Store(false)
	up1, down1, z1, n1 := wire.up.Load(), wire.down.Load(), wire.zdown.Load(), wire.framesDown.Load()
	cpu1, self1, t1 := srv.CPU(), SelfCPU(), time.Now()
	p.done()
	running.Store(false)
	wg.Wait()
	for _, c := range clients {
		c.close()
	}

	secs := t1.Sub(t0).Seconds()
	res.Seconds = secs
	res.RoundTrips = wire.msgs.Load()
	res.PerSec = float64(res.RoundTrips) / secs
	res.PayloadBytes = wire.payload.Load()
	res.WireUp, res.WireDown = up1-up0, down1-down0
	res.Latency = LatencyOf(hist)
	res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	res.ClientCPUSeconds = (self1 - self0).Seconds()
	res.PeakRSS = peak
	if len(errs) > 0 {
		res.Errors = errs
	}
	if res.RoundTrips > 0 {
		res.ClientCPUPerMsg = res.ClientCPUSeconds * 1e6 / float64(res.RoundTrips)
		res.MeanSize = float64(res.PayloadBytes) / float64(res.RoundTrips)
		res.RatioUp = float64(res.WireUp) / float64(res.PayloadBytes)
		res.RatioDown = float64(res.WireDown) / float64(res.PayloadBytes)
		res.ServerCPUPerMsg = res.ServerCPUSeconds * 1e6 / float64(res.RoundTrips)
	}
	if n := n1 - n0; n > 0 {
		res.CompressedDown = float64(z1-z0) / float64(n)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%s: %s", label, FormatErrors(errs))
	}
	if res.RoundTrips == 0 {
		return res, fmt.Errorf("%s: no message echoed in %v", label, cfg.Duration)
	}
	return res, nil
}

// zWire counts what every client of a run sent and received.
type zWire struct {
	up, down          atomic.Int64 // TCP bytes
	framesDown, zdown atomic.Int64 // data frames received, compressed ones
	msgs, payload     atomic.Int64 // echoes in the measured window, their payload bytes
}

// zClient is one connection of the compress scenario: blocking I/O on its
// own goroutine, permessage-deflate as the server agreed to.
type zClient struct {
	c    net.Conn
	br   *bufio.Reader
	wire *zWire
	ext  string

	wmu                  sync.Mutex // send and pongs from recv (broadcast: two goroutines)
	deflate              bool
	takeOut, takeIn      bool
	d                    *codec.WindowDeflater
	f                    codec.WindowInflater
	out, in              codec.History
	zbuf, frame, payload []byte
}

func dialZ(ctx context.Context, addr string, i int, wire *zWire) (*zClient, error) {
	src := DefaultSources()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src[i%len(src)].AsSlice()}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &zClient{c: countingConn{conn, wire}, wire: wire}
	c.br = bufio.NewReaderSize(c.c, 64<<10)
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: " + CompressOffer + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, req); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	_ = resp.Body.Close() // empty: a 101 has no body, and the frames stay in c.br
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("handshake: status %d, bad or missing Sec-WebSocket-Accept", resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
	c.ext = resp.Header.Get("Sec-WebSocket-Extensions")
	if err := c.agree(c.ext); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// agree applies the server's answer to CompressOffer (RFC 7692 §7.1):
// takeover in each direction unless it says no, windows as it says (15
// bits when it says nothing).
func (c *zClient) agree(ext string) error {
	if ext == "" {
		return nil
	}
	parts := strings.Split(ext, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" || strings.Contains(ext, ",") {
		return fmt.Errorf("unexpected Sec-WebSocket-Extensions %q", ext)
	}
	c.deflate, c.takeOut, c.takeIn = true, true, true
	outBits, inBits := codec.MaxWindowBits, codec.MaxWindowBits
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		n, _ := strconv.Atoi(strings.Trim(v, `"`))
		switch k {
		case "server_no_context_takeover":
			c.takeIn = false
		case "client_no_context_takeover":
			c.takeOut = false
		case "server_max_window_bits":
			inBits = n
		case "client_max_window_bits":
			outBits = n
		default:
			return fmt.Errorf("unexpected parameter %q in %q", k, ext)
		}
	}
	if outBits < codec.MinWindowBits || inBits < codec.MinWindowBits {
		return fmt.Errorf("bad window in %q", ext)
	}
	c.d = codec.NewWindowDeflater(6)
	c.out.SetWindowBits(outBits)
	c.in.SetWindowBits(max(inBits, 9)) // zlib peers use 9 when they agree to 8
	return nil
}

// echo sends msg as a text message and checks the echo, which must come
// within 10 s.
func (c *zClient) echo(msg []byte) error {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.send(msg); err != nil {
		return err
	}
	got, err := c.recv()
	if err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("verify: echo differs from the message sent")
	}
	return nil
}

// send sends msg as a text message, compressed as agreed.
func (c *zClient) send(msg []byte) error {
	p, rsv := msg, byte(0)
	if c.deflate {
		c.zbuf = c.d.AppendCompress(c.zbuf[:0], &c.out, msg, c.takeOut)
		p, rsv = c.zbuf, 0x4
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	h := ws.Header{Fin: true, Rsv: rsv, OpCode: ws.OpText, Masked: true, Mask: mask, Length: int64(len(p))}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.frame = codec.AppendHeader(c.frame[:0], h)
	start := len(c.frame)
	c.frame = append(c.frame, p...)
	ws.Cipher(c.frame[start:], mask, 0)
	_, err := c.c.Write(c.frame)
	return err
}

// recv reads the next text message, answering pings, and returns it
// inflated; it is valid until the next recv.
func (c *zClient) recv() ([]byte, error) {
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 64<<20 {
			return nil, errors.New("frame too large")
		}
		if int64(cap(c.payload)) < h.Length {
			c.payload = make([]byte, h.Length)
		}
		got := c.payload[:h.Length]
		if _, err := io.ReadFull(c.br, got); err != nil {
			return nil, err
		}
		switch {
		case h.OpCode == ws.OpPing:
			var mask [4]byte
			_, _ = rand.Read(mask[:])
			pong := codec.AppendFrameMasked(nil, ws.OpPong, true, got, mask)
			c.wmu.Lock()
			_, err := c.c.Write(pong)
			c.wmu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		case h.OpCode == ws.OpPong:
			continue
		case h.OpCode == ws.OpClose:
			return nil, errors.New("server closed the connection")
		case h.OpCode != ws.OpText || !h.Fin:
			return nil, fmt.Errorf("unexpected frame: op %v fin %v", h.OpCode, h.Fin)
		}
		c.wire.framesDown.Add(1)
		if h.Rsv&0x4 != 0 {
			if !c.deflate {
				return nil, errors.New("compressed frame without permessage-deflate")
			}
			c.wire.zdown.Add(1)
			if got, err = c.f.Inflate(&c.in, got, 64<<20, c.takeIn); err != nil {
				return nil, fmt.Errorf("inflate: %w", err)
			}
		}
		return got, nil
	}
}

// close sends a close frame, waits briefly for the server's, and closes.
func (c *zClient) close() {
	_ = c.c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.c.Write(codec.AppendFrameMasked(nil, ws.OpClose, true, []byte{0x03, 0xe8}, [4]byte{1, 2, 3, 4}))
	_, _ = io.Copy(io.Discard, c.br)
	_ = c.c.Close()
}

type countingConn struct {
	net.Conn
	w *zWire
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.down.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.up.Add(int64(n))
	return n, err
}

// compressGenerator returns the message generator of a kind.
func compressGenerator(kind string) (func(r *mrand.Rand, seq int) []byte, error) {
	switch kind {
	case "game":
		return gameTick, nil
	case "chat":
		return chatLine, nil
	}
	return nil, fmt.Errorf("compress: unknown kind %q (game or chat)", kind)
}

// gameTick is a game state update as JSON, about 400 bytes: seven players
// whose positions and health drift from one tick to the next.
func gameTick(r *mrand.Rand, seq int) []byte {
	b := make([]byte, 0, 512)
	b = fmt.Appendf(b, `{"t":"state","tick":%d,"players":[`, seq)
	for i := range 7 {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":%d,"x":%d,"y":%d,"hp":%d,"name":"player-%d"}`, i, 100+i*7+seq%50+r.IntN(3), 200+i*3-seq%30+r.IntN(3), 100-r.IntN(20), i)
	}
	return append(b, "]}"...)
}

var (
	chatWho    = []string{"alice", "bruno", "chiara", "dmitri", "esther", "farid", "greta", "hiro", "ines", "jonas", "kemal", "lena"}
	chatPhrase = []string{"anyone up for a raid tonight?", "need a healer and two dps for the north gate", "gg, well played everyone",
		"brb, grabbing coffee", "where do I find the blacksmith?", "selling 20 iron ore, pm me", "lag spike again on eu-west",
		"lol that boss fight was wild", "can someone invite me to the guild?", "meet at the fountain in 5", "thanks for the potions!",
		"who has the key to the crypt?", "I'll tank, you heal", "that quest bugged out for me", "new patch notes are up"}
)

// chatLine is a chat message in a JSON envelope, about 100 bytes.
func chatLine(r *mrand.Rand, seq int) []byte {
	return fmt.Appendf(nil, `{"t":"chat","room":"lobby","seq":%d,"from":%q,"text":%q}`, seq, chatWho[r.IntN(len(chatWho))], chatPhrase[r.IntN(len(chatPhrase))])
}
