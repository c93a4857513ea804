// Package demo is the shared-board demo served by `megaws serve --mode demo`:
// a page at / where every browser tab paints cells of one board and sees the
// other tabs' strokes in real time, with a live panel of the server's stats.
//
// It shows the embedding API in a few lines: the page is answered by the
// handler's ServeHTTP (HTTPResponder) on the WebSocket port, every player joins
// one Room in OnOpen, each move is applied to the server-side board and
// published to the room, and a goroutine sends Server.Stats once a second. In
// a cluster (megaws serve --broker) it applies the other nodes' moves to its
// board too (server.ClusterObserver).
//
// Protocol (JSON text messages on /ws):
//
//	server → client  {"t":"hello","you":7,"color":3,"w":32,"h":20,"cells":"00a3...","rates":[4,12.5]}
//	                 {"t":"paint","i":41,"c":3,"by":7}   (c = 0 erases)
//	                 {"t":"clear","by":7}
//	                 {"t":"stats","conns":2,"loops":2,"inPerSec":12,...}
//	client → server  {"t":"paint","i":41} | {"t":"erase","i":41} | {"t":"clear"}
//
// cells holds one base-36 digit per cell, row by row: 0 is empty, 1 to
// Colors are the palette entries. rates are the last minute's messages out
// per second, oldest first, for the page's chart.
package demo

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// Board size and palette.
const (
	Width  = 32
	Height = 20
	Colors = 12
)

// rateHistory is how many per-second samples a new page gets for its chart.
const rateHistory = 60

// maxClientMessage bounds what a player may send; anything longer is not a move.
const maxClientMessage = 256

//go:embed index.html
var indexHTML []byte

// pagePolicy is the page's Content-Security-Policy up to connect-src: nothing
// but its own inline script and style, allowed by their hashes (CSP hash
// sources), so an injected script or style never runs; the empty favicon (a
// data: URL); no <base>, no form targets, no framing by other sites.
// connect-src is added per request by HTTPHeader.
var pagePolicy = "default-src 'none'; " +
	"script-src " + inlineHashes(indexHTML, "script") + "; " +
	"style-src " + inlineHashes(indexHTML, "style") + "; " +
	"img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"connect-src 'self'"

// inlineHashes returns the CSP hash sources ('sha256-...') of the contents of
// every <tag> element of page, or 'none' when it has none. The page is
// embedded, so the hashes follow every edit of index.html.
func inlineHashes(page []byte, tag string) string {
	re := regexp.MustCompile(`(?is)<` + tag + `(?:\s[^>]*)?>(.*?)</` + tag + `\s*>`)
	var srcs []string
	for _, m := range re.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[1])
		srcs = append(srcs, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	if len(srcs) == 0 {
		return "'none'"
	}
	return strings.Join(srcs, " ")
}

// Demo is the demo's server.Handler (and server.HTTPResponder). Create it with
// New, give it its server with Start.
type Demo struct {
	server.BaseHandler

	s    *server.Server
	room *server.Room

	// mu guards the board and orders its changes with their publication: a
	// move is applied and published under mu, so every loop receives the
	// moves in board order, and a joining player's snapshot and its Join
	// happen together (no move falls between them).
	mu     sync.Mutex
	cells  [Width * Height]byte
	paints uint64
	rates  []float64 // messages out per second, the last rateHistory samples

	players atomic.Uint64
	// idBase makes player ids unique across the nodes of a cluster: each
	// process numbers its players from a random base.
	idBase uint64
}

// player is a connection's state, kept in its Conn context (loop only).
type player struct {
	id    uint64 // 1 for the first player since the server started
	color byte
}

// New returns a demo with an empty board.
func New() *Demo { return &Demo{idBase: uint64(rand.IntN(9000)) * 1_000_000} }

// Start attaches the demo to s, which must have been created with this Demo
// as its handler, before s serves; it starts the goroutine that publishes
// the stats once a second. stop ends that goroutine.
func (d *Demo) Start(s *server.Server) (stop func()) {
	d.s = s
	d.room = s.Room("board")
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		d.publishStats(done)
	}()
	return func() {
		close(done)
		<-finished
	}
}

// ServeHTTP answers GET / with the page, which HTTPHeader gives its security
// headers; other paths get megaws's default answer (/healthz, or 426). It runs
// on the event loop; the body is a shared static slice.
func (d *Demo) ServeHTTP(r *server.Request) (int, string, []byte) {
	switch r.Path() {
	case "/", "/index.html":
		return 200, "text/html; charset=utf-8", indexHTML
	}
	return 0, "", nil
}

// HTTPHeader returns the header lines sent with the page: its
// Content-Security-Policy and X-Content-Type-Options: nosniff. It runs on the
// event loop right after ServeHTTP, with the same request.
func (d *Demo) HTTPHeader(r *server.Request, status int) string {
	if status != 200 {
		return ""
	}
	return securityHeader(r.Header("Host"))
}

// securityHeader returns the page's header lines, each ending in CRLF, for a
// page loaded from host (the request's Host header). The page's socket goes
// to its own host, which connect-src 'self' covers in browsers that
// implement CSP Level 3 (ws: and wss: match 'self'); older ones need the
// ws:// and wss:// sources of host, added when it is a name or IPv4 address
// with an optional port (CSP host sources have no IPv6 literals).
func securityHeader(host string) string {
	csp := pagePolicy
	if cspHost(host) {
		host = strings.ToLower(host)
		csp += " ws://" + host + " wss://" + host
	}
	return "Content-Security-Policy: " + csp + "\r\nX-Content-Type-Options: nosniff\r\n"
}

// cspHost reports whether hostport is a CSP host-source host (letters,
// digits, '-' and '.') with an optional numeric port: nothing in it can end
// or change a directive.
func cspHost(hostport string) bool {
	host, port, hasPort := strings.Cut(hostport, ":")
	if host == "" || len(host) > 253 || host[0] == '.' || host[0] == '-' || hasPort && (port == "" || len(port) > 5) {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// OnUpgrade accepts WebSocket upgrades on /ws only.
func (d *Demo) OnUpgrade(_ *server.Conn, r *server.Request) error {
	if r.Path() != "/ws" {
		return server.Reject(404, "the board lives at /ws")
	}
	return nil
}

// OnOpen gives the player a color, sends the board and joins the room.
func (d *Demo) OnOpen(c *server.Conn) {
	n := d.players.Add(1)
	p := &player{id: d.idBase + n, color: byte((n-1)%Colors) + 1}
	c.SetContext(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	hello := make([]byte, 0, 128+Width*Height+8*len(d.rates))
	hello = append(hello, `{"t":"hello","you":`...)
	hello = strconv.AppendUint(hello, p.id, 10)
	hello = append(hello, `,"color":`...)
	hello = strconv.AppendUint(hello, uint64(p.color), 10)
	hello = append(hello, `,"w":`...)
	hello = strconv.AppendInt(hello, Width, 10)
	hello = append(hello, `,"h":`...)
	hello = strconv.AppendInt(hello, Height, 10)
	hello = append(hello, `,"cells":"`...)
	for _, v := range d.cells {
		hello = append(hello, digit(v))
	}
	hello = append(hello, `","rates":[`...)
	for i, r := range d.rates {
		if i > 0 {
			hello = append(hello, ',')
		}
		hello = strconv.AppendFloat(hello, r, 'f', -1, 64)
	}
	hello = append(hello, "]}"...)
	_ = c.WriteText(hello)
	// Join takes effect on c's loop after this callback, and before any move
	// published once mu is released: the snapshot and the stream meet exactly.
	// It fails only when c is already closed or the server is stopping, and
	// then there is no one left to send moves to.
	_ = d.room.Join(c)
}

// move is what a player sends.
type move struct {
	T string `json:"t"`
	I int    `json:"i"`
}

// OnMessage applies a move to the board and publishes it to every player.
func (d *Demo) OnMessage(c *server.Conn, op ws.OpCode, payload []byte) {
	p, _ := c.Context().(*player)
	if p == nil || op != ws.OpText || len(payload) > maxClientMessage {
		return
	}
	var m move
	if json.Unmarshal(payload, &m) != nil {
		return
	}
	var color byte
	switch m.T {
	case "paint":
		color = p.color
	case "erase":
	case "clear":
		d.clear(p)
		return
	default:
		return
	}
	if m.I < 0 || m.I >= len(d.cells) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cells[m.I] == color {
		return
	}
	d.cells[m.I] = color
	d.paints++
	out := make([]byte, 0, 64)
	out = append(out, `{"t":"paint","i":`...)
	out = strconv.AppendInt(out, int64(m.I), 10)
	out = append(out, `,"c":`...)
	out = strconv.AppendUint(out, uint64(color), 10)
	out = append(out, `,"by":`...)
	out = strconv.AppendUint(out, p.id, 10)
	out = append(out, '}')
	_ = d.room.Publish(ws.OpText, out)
}

func (d *Demo) clear(p *player) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cells = [Width * Height]byte{}
	_ = d.room.Publish(ws.OpText, []byte(`{"t":"clear","by":`+strconv.FormatUint(p.id, 10)+`}`))
}

// OnRemotePublish applies the moves that players on other nodes of a cluster
// (megaws serve --broker) made to this node's board, so the nodes' boards and
// the snapshots they send to joining players agree. The server delivers the
// moves to local players itself. Concurrent moves on the same cell through
// different nodes may end in a different order on each node: last writer
// wins per node.
func (d *Demo) OnRemotePublish(room string, op ws.OpCode, payload []byte) {
	if room != "board" || op != ws.OpText {
		return
	}
	var m struct {
		T string `json:"t"`
		I int    `json:"i"`
		C int    `json:"c"`
	}
	if json.Unmarshal(payload, &m) != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch m.T {
	case "paint":
		if m.I >= 0 && m.I < len(d.cells) && m.C >= 0 && m.C <= Colors {
			d.cells[m.I] = byte(m.C)
			d.paints++
		}
	case "clear":
		d.cells = [Width * Height]byte{}
	}
}

// stats is the panel's message.
type stats struct {
	T          string  `json:"t"`
	Conns      int64   `json:"conns"`
	Loops      int     `json:"loops"`
	Handshakes uint64  `json:"handshakes"`
	InPerSec   float64 `json:"inPerSec"`
	OutPerSec  float64 `json:"outPerSec"`
	BytesIn    uint64  `json:"bytesIn"`
	BytesOut   uint64  `json:"bytesOut"`
	Painted    int     `json:"painted"`
	Moves      uint64  `json:"moves"`
	UptimeSec  int64   `json:"uptimeSec"`
}

// publishStats sends the server's counters to this node's players once a
// second, with the message rates over the last interval.
func (d *Demo) publishStats(done <-chan struct{}) {
	const every = time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	last, lastAt := d.s.Stats(), time.Now()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		st, now := d.s.Stats(), time.Now()
		secs := now.Sub(lastAt).Seconds()
		msg := stats{
			T: "stats", Conns: st.Conns, Loops: st.Loops, Handshakes: st.Handshakes,
			InPerSec:  rate(st.MessagesIn, last.MessagesIn, secs),
			OutPerSec: rate(st.MessagesOut, last.MessagesOut, secs),
			BytesIn:   st.BytesIn, BytesOut: st.BytesOut,
			UptimeSec: int64(now.Sub(start).Seconds()),
		}
		d.mu.Lock()
		for _, v := range d.cells {
			if v != 0 {
				msg.Painted++
			}
		}
		msg.Moves = d.paints
		if len(d.rates) == rateHistory {
			d.rates = append(d.rates[:0], d.rates[1:]...)
		}
		d.rates = append(d.rates, msg.OutPerSec)
		d.mu.Unlock()
		last, lastAt = st, now
		b, err := json.Marshal(msg)
		if err == nil {
			// To this node's players only (Room.Each runs on their
			// loops): in a cluster every node sends its own panel.
			_ = d.room.Each(func(c *server.Conn) { _ = c.WriteText(b) })
		}
	}
}

func rate(now, before uint64, secs float64) float64 {
	if secs <= 0 || now < before {
		return 0
	}
	return float64(int64(float64(now-before)/secs*10)) / 10
}

func digit(v byte) byte {
	if v < 10 {
		return '0' + v
	}
	return 'a' + v - 10
}
