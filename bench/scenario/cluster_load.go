package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
)

// A cluster payload is ASCII, so that it travels unchanged inside the JSON
// of Centrifugo's protocol and Socket.IO's event packets: 32 hexadecimal
// digits of send time and sequence number (loadgen's text header), then
// lowercase letters derived from the sequence number. The sequence number
// packs the publisher (bits 48-62) and its message number (bits 0-47); bit
// 63 marks a probe, which only says that a path from publisher to
// subscriber works and is not counted.
const (
	clusterProbeBit = uint64(1) << 63
	clusterPubShift = 48
	clusterNumMask  = uint64(1)<<clusterPubShift - 1
	// MaxClusterPublishers bounds Publishers: each subscriber keeps one bit
	// per publisher for the probes.
	MaxClusterPublishers = 64
)

// clusterFiller is the letter pattern payload fillers are windows of.
type clusterFiller []byte

func newClusterFiller(size int) clusterFiller {
	n := max(size-loadgen.TextPayloadHeader, 0)
	p := make([]byte, n+26)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

func (f clusterFiller) window(seq uint64, n int) []byte {
	k := int(seq % 26)
	return f[k : k+n]
}

// fill writes the payload for seq sent at stamp into p.
func (f clusterFiller) fill(p []byte, seq uint64, stamp int64) {
	loadgen.FillTextPayload(p[:loadgen.TextPayloadHeader], seq, stamp)
	copy(p[loadgen.TextPayloadHeader:], f.window(seq, len(p)-loadgen.TextPayloadHeader))
}

// clusterProto is how the load generator speaks to one kind of server: the
// handshake path, what to send once open, how to publish, and how to find
// the payloads in what arrives.
type clusterProto interface {
	path() string
	// open is called once the WebSocket is open.
	open(c *loop.Conn, cs *clusterConn)
	// publish sends payload as a publication; buf is scratch space.
	publish(c *loop.Conn, cs *clusterConn, payload []byte, buf *[]byte)
	// receive handles one WebSocket message and calls h.payload for every
	// publication in it.
	receive(h *clusterLoop, c *loop.Conn, cs *clusterConn, op ws.OpCode, p []byte)
}

func protoFor(target string) (clusterProto, error) {
	switch target {
	case "megaws":
		return megawsProto{}, nil
	case "centrifugo":
		return centrifugoProto{}, nil
	case "socketio":
		return socketioProto{}, nil
	}
	return nil, fmt.Errorf("cluster: no client protocol for %q", target)
}

// megawsProto: megaws serve --mode broadcast sends every message to every
// connection of every node; a text message is the payload itself.
type megawsProto struct{}

func (megawsProto) path() string { return "/" }

func (megawsProto) open(_ *loop.Conn, cs *clusterConn) { cs.ready = true }

func (megawsProto) publish(c *loop.Conn, _ *clusterConn, payload []byte, _ *[]byte) {
	c.Send(ws.OpText, payload)
}

func (megawsProto) receive(h *clusterLoop, c *loop.Conn, cs *clusterConn, op ws.OpCode, p []byte) {
	if op == ws.OpText {
		h.payload(c, cs, p)
	}
}

// centrifugoProto is Centrifugo's client protocol v2 in JSON over
// WebSocket: {"id":1,"connect":{}}, {"id":2,"subscribe":{"channel":C}},
// publications as {"push":{"channel":C,"pub":{"data":...}}}; several
// replies and pushes may share one frame, one JSON object per line. The
// server's ping is an empty object, answered with one. Publishing is the
// client-side publish command, answered with {"id":N,"publish":{}}.
type centrifugoProto struct{}

func (centrifugoProto) path() string { return "/connection/websocket" }

func (centrifugoProto) open(c *loop.Conn, cs *clusterConn) {
	c.Send(ws.OpText, []byte(`{"id":1,"connect":{}}`))
	c.Send(ws.OpText, []byte(`{"id":2,"subscribe":{"channel":"`+centrifugoChannel+`"}}`))
	cs.cmdID = 2
}

func (centrifugoProto) publish(c *loop.Conn, cs *clusterConn, payload []byte, buf *[]byte) {
	cs.cmdID++
	b := append((*buf)[:0], `{"id":`...)
	b = strconv.AppendUint(b, cs.cmdID, 10)
	b = append(b, `,"publish":{"channel":"`+centrifugoChannel+`","data":"`...)
	b = append(b, payload...)
	b = append(b, `"}}`...)
	*buf = b
	c.Send(ws.OpText, b)
}

var (
	cfPush      = []byte(`{"push":`)
	cfData      = []byte(`"data":"`)
	cfPing      = []byte(`{}`)
	cfError     = []byte(`"error":`)
	cfSubscribe = []byte(`{"id":2,"subscribe":`)
)

func (centrifugoProto) receive(h *clusterLoop, c *loop.Conn, cs *clusterConn, op ws.OpCode, p []byte) {
	if op != ws.OpText {
		return
	}
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		switch {
		case bytes.HasPrefix(line, cfPush):
			i := bytes.Index(line, cfData)
			if i < 0 {
				c.Abort(fmt.Errorf("centrifugo: push without data: %.80s", line))
				return
			}
			data := line[i+len(cfData):]
			end := bytes.IndexByte(data, '"')
			if end < 0 {
				c.Abort(fmt.Errorf("centrifugo: push data is not a string: %.80s", line))
				return
			}
			if !h.payload(c, cs, data[:end]) {
				return
			}
		case bytes.Equal(line, cfPing):
			c.Send(ws.OpText, cfPing)
		case bytes.Contains(line, cfError):
			c.Abort(fmt.Errorf("centrifugo: %.120s", line))
			return
		case bytes.HasPrefix(line, cfSubscribe):
			h.setReady(cs)
		}
	}
}

// socketioProto is Socket.IO v5 over Engine.IO v4 on the websocket
// transport: the server opens with "0{...}", the client joins the main
// namespace with "40" (answered "40{...}"), events are "42[NAME,ARG]" and the
// server's pings "2" are answered "3". The peer emits event "m" to
// everyone for every "m" it gets.
type socketioProto struct{}

func (socketioProto) path() string { return "/socket.io/?EIO=4&transport=websocket" }

func (socketioProto) open(*loop.Conn, *clusterConn) {}

var sioEvent = []byte(`42["m","`)

func (socketioProto) publish(c *loop.Conn, _ *clusterConn, payload []byte, buf *[]byte) {
	b := append((*buf)[:0], sioEvent...)
	b = append(b, payload...)
	b = append(b, `"]`...)
	*buf = b
	c.Send(ws.OpText, b)
}

func (socketioProto) receive(h *clusterLoop, c *loop.Conn, cs *clusterConn, op ws.OpCode, p []byte) {
	if op != ws.OpText || len(p) == 0 {
		return
	}
	switch {
	case bytes.HasPrefix(p, sioEvent):
		data := p[len(sioEvent):]
		if len(data) < 2 || !bytes.HasSuffix(data, []byte(`"]`)) {
			c.Abort(fmt.Errorf("socketio: malformed event %.80s", p))
			return
		}
		h.payload(c, cs, data[:len(data)-2])
	case len(p) == 1 && p[0] == '2':
		c.Send(ws.OpText, []byte("3"))
	case p[0] == '0':
		c.Send(ws.OpText, []byte("40"))
	case bytes.HasPrefix(p, []byte("40")):
		h.setReady(cs)
	case bytes.HasPrefix(p, []byte("44")), p[0] == '1':
		c.Abort(fmt.Errorf("socketio: refused or closed: %.120s", p))
	}
}

// clusterConn is the load generator's state of one connection.
type clusterConn struct {
	ready  bool     // subscribed: publications may arrive
	probes uint64   // bit p: a probe from publisher p arrived
	next   []uint64 // per publisher, the message number expected next
	pub    *clusterPub
	cmdID  uint64 // Centrifugo command ids
}

// clusterPub is a publishing connection.
type clusterPub struct {
	c      *loop.Conn
	cs     *clusterConn
	id     int
	rate   float64 // messages per second
	start  time.Time
	sent   int64 // messages published in the measured window
	probes int64
}

// Phases of a cluster point, set from the main goroutine.
const (
	phaseIdle int32 = iota
	phaseProbe
	phasePublish
)

// clusterLoop is the Handler of one load-generator loop.
type clusterLoop struct {
	loop.NopHandler
	l      *loop.Loop
	proto  clusterProto
	size   int
	nPub   int
	all    uint64 // probe mask with every publisher's bit
	filler clusterFiller
	t0     int64
	node   int // the node this loop's connections are on
	nodes  int // publisher p is on node p mod nodes
	hist   *hdrhistogram.Histogram
	// local and remote split hist by whether the publisher is on this
	// loop's node (local fan-out) or another (through the broker).
	local, remote *hdrhistogram.Histogram
	pubs          []*clusterPub
	buf           []byte // payload
	msg           []byte // protocol framing
	phase         atomic.Int32
	last          time.Time // last probe round

	ready      atomic.Int64 // connections subscribed
	probed     atomic.Int64 // connections that got a probe from every publisher
	deliveries atomic.Int64 // verified publications received in order or not
	gaps       atomic.Int64 // messages skipped in a publisher's sequence
	late       atomic.Int64 // messages older than one already received (duplicate or reordered)
}

func newClusterLoop(l *loop.Loop, proto clusterProto, size, nPub int, t0 int64, node, nodes int) *clusterLoop {
	h := &clusterLoop{l: l, proto: proto, size: size, nPub: nPub, filler: newClusterFiller(size), t0: t0, node: node, nodes: nodes,
		hist: loadgen.NewHistogram(), local: loadgen.NewHistogram(), remote: loadgen.NewHistogram(), buf: make([]byte, size)}
	h.all = uint64(1)<<nPub - 1
	if nPub == 64 {
		h.all = ^uint64(0)
	}
	return h
}

func (h *clusterLoop) OnOpen(c *loop.Conn) {
	cs := &clusterConn{next: make([]uint64, h.nPub)}
	for i := range cs.next {
		cs.next[i] = 1
	}
	c.SetContext(cs)
	h.proto.open(c, cs)
	if cs.ready {
		h.ready.Add(1)
	}
}

func (h *clusterLoop) setReady(cs *clusterConn) {
	if !cs.ready {
		cs.ready = true
		h.ready.Add(1)
	}
}

func (h *clusterLoop) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	cs, _ := c.Context().(*clusterConn)
	if cs == nil {
		return
	}
	h.proto.receive(h, c, cs, op, p)
}

var errClusterStamp = errors.New("verify: send time out of range")

// payload verifies one publication and counts it; false when it failed the
// connection.
func (h *clusterLoop) payload(c *loop.Conn, cs *clusterConn, p []byte) bool {
	if len(p) != h.size {
		c.Abort(fmt.Errorf("verify: payload is %d bytes, want %d", len(p), h.size))
		return false
	}
	seq, stamp, ok := loadgen.TextPayloadInfo(p)
	if !ok {
		c.Abort(errors.New("verify: payload header is not hexadecimal"))
		return false
	}
	if !bytes.Equal(p[loadgen.TextPayloadHeader:], h.filler.window(seq, h.size-loadgen.TextPayloadHeader)) {
		c.Abort(fmt.Errorf("verify: filler of message %#x differs", seq))
		return false
	}
	pub := int(seq >> clusterPubShift & 0x7fff)
	if pub >= h.nPub {
		c.Abort(fmt.Errorf("verify: publisher %d of %d", pub, h.nPub))
		return false
	}
	if seq&clusterProbeBit != 0 {
		if cs.probes&(1<<pub) == 0 {
			cs.probes |= 1 << pub
			if cs.probes == h.all {
				h.probed.Add(1)
			}
		}
		return true
	}
	now := time.Now().UnixNano()
	if stamp < h.t0 || stamp > now {
		c.Abort(errClusterStamp)
		return false
	}
	h.deliveries.Add(1)
	n := seq & clusterNumMask
	switch next := cs.next[pub]; {
	case n == next:
		cs.next[pub] = n + 1
	case n > next:
		h.gaps.Add(int64(n - next))
		cs.next[pub] = n + 1
	default:
		h.late.Add(1)
	}
	d := (now - stamp) / 1e3
	_ = h.hist.RecordValue(d)
	if pub%h.nodes == h.node {
		_ = h.local.RecordValue(d)
	} else {
		_ = h.remote.RecordValue(d)
	}
	return true
}

// probeEvery is the interval between probe rounds.
const probeEvery = 50 * time.Millisecond

func (h *clusterLoop) OnTick(now time.Time) {
	switch h.phase.Load() {
	case phaseProbe:
		if now.Sub(h.last) < probeEvery {
			return
		}
		h.last = now
		for _, p := range h.pubs {
			if p.c.IsOpen() {
				p.probes++
				h.send(p, clusterProbeBit|uint64(p.id)<<clusterPubShift|uint64(p.probes))
			}
		}
	case phasePublish:
		for _, p := range h.pubs {
			if !p.c.IsOpen() {
				continue
			}
			due := int64(now.Sub(p.start).Seconds()*p.rate) - p.sent
			for i := int64(0); i < due && i < 10_000; i++ {
				p.sent++
				h.send(p, uint64(p.id)<<clusterPubShift|uint64(p.sent))
			}
		}
	}
}

func (h *clusterLoop) send(p *clusterPub, seq uint64) {
	h.filler.fill(h.buf, seq, time.Now().UnixNano())
	h.proto.publish(p.c, p.cs, h.buf, &h.msg)
}

// addPublisher makes an open, subscribed connection of this loop that does
// not publish yet publisher id. Call it on the loop.
func (h *clusterLoop) addPublisher(id int, rate float64) bool {
	for _, c := range h.l.Open() {
		cs, _ := c.Context().(*clusterConn)
		if cs != nil && cs.ready && cs.pub == nil {
			cs.pub = &clusterPub{c: c, cs: cs, id: id, rate: rate}
			h.pubs = append(h.pubs, cs.pub)
			return true
		}
	}
	return false
}
