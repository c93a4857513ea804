package codec

import (
	"math/rand/v2"
	"strconv"
)

// gameSim produces the state message a game server broadcasts every tick:
// about 392 bytes of JSON with ten entities, of which most move a little
// each tick; now and then one's health changes.
type gameSim struct {
	rng  *rand.Rand
	tick int
	ents [10]entity
}

type entity struct {
	id     int
	x, y   float64
	vx, vy float64
	hp     int
}

func newGameSim(seed uint64) *gameSim {
	g := &gameSim{rng: rand.New(rand.NewPCG(seed, 7)), tick: 1000 + int(seed%1000)*37}
	for i := range g.ents {
		e := &g.ents[i]
		e.id = 10 + i*7 + int(seed%5)
		e.x, e.y = 100+g.rng.Float64()*800, 100+g.rng.Float64()*500
		e.vx, e.vy = g.rng.Float64()*4-2, g.rng.Float64()*4-2
		e.hp = 100
	}
	return g
}

// next appends the next tick's message to dst.
func (g *gameSim) next(dst []byte) []byte {
	g.tick++
	dst = append(dst, `{"tick":`...)
	dst = strconv.AppendInt(dst, int64(g.tick), 10)
	dst = append(dst, `,"ents":[`...)
	for i := range g.ents {
		e := &g.ents[i]
		if g.rng.IntN(10) < 7 {
			e.vx += g.rng.Float64()*0.2 - 0.1
			e.vy += g.rng.Float64()*0.2 - 0.1
			e.vx, e.vy = min(max(e.vx, -3), 3), min(max(e.vy, -3), 3)
			e.x, e.y = e.x+e.vx, e.y+e.vy
			if e.x < 100 || e.x > 999 {
				e.vx = -e.vx
			}
			if e.y < 100 || e.y > 599 {
				e.vy = -e.vy
			}
		}
		switch g.rng.IntN(40) {
		case 0:
			e.hp = max(10, e.hp-g.rng.IntN(15))
		case 1:
			e.hp = 100
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"i":`...)
		dst = strconv.AppendInt(dst, int64(e.id), 10)
		dst = append(dst, `,"x":`...)
		dst = strconv.AppendFloat(dst, e.x, 'f', 1, 64)
		dst = append(dst, `,"y":`...)
		dst = strconv.AppendFloat(dst, e.y, 'f', 1, 64)
		dst = append(dst, `,"h":`...)
		dst = strconv.AppendInt(dst, int64(e.hp), 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// chatSim produces chat lines of about 100 bytes.
type chatSim struct {
	rng *rand.Rand
}

var chatWords = []string{"gg", "wp", "anyone", "up", "for", "a", "rematch", "?", "lol", "that", "was",
	"close", "nice", "shot", "where", "are", "you", "go", "left", "right", "push", "mid", "heal", "me",
	"please", "brb", "ok", "the", "boss", "is", "down", "next", "round", "ready", "wait", "team"}

func newChatSim(seed uint64) *chatSim { return &chatSim{rng: rand.New(rand.NewPCG(seed, 11))} }

func (c *chatSim) next(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, `{"t":"chat","from":"player`...)
	dst = strconv.AppendInt(dst, int64(c.rng.IntN(64)), 10)
	dst = append(dst, `","text":"`...)
	for n := 0; len(dst)-start < 96; n++ {
		if n > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, chatWords[c.rng.IntN(len(chatWords))]...)
	}
	return append(dst, `"}`...)
}

// messageStream is a named generator of a connection's messages.
type messageStream struct {
	name string
	new  func(seed uint64) func(dst []byte) []byte
}

// messageStreams is the one table of message kinds that the window tests and
// benchmarks share.
var messageStreams = []messageStream{
	{name: "game392", new: func(seed uint64) func([]byte) []byte { return newGameSim(seed).next }},
	{name: "chat100", new: func(seed uint64) func([]byte) []byte { return newChatSim(seed).next }},
	{name: "random", new: func(seed uint64) func([]byte) []byte {
		rng := rand.New(rand.NewPCG(seed, 13))
		return func(dst []byte) []byte {
			for range 50 + rng.IntN(400) {
				dst = append(dst, byte(rng.Uint32()))
			}
			return dst
		}
	}},
	{name: "mixed", new: func(seed uint64) func([]byte) []byte {
		rng := rand.New(rand.NewPCG(seed, 17))
		game := newGameSim(seed)
		return func(dst []byte) []byte {
			switch rng.IntN(6) {
			case 0:
				return dst
			case 1:
				return append(dst, byte(rng.Uint32()))
			case 2:
				for range rng.IntN(5000) {
					dst = append(dst, byte(rng.Uint32()))
				}
				return dst
			case 3:
				for range rng.IntN(70000) {
					dst = append(dst, "abcab"[rng.IntN(5)])
				}
				return dst
			case 4:
				n := rng.IntN(100000)
				return append(dst, make([]byte, n)...)
			}
			return game.next(dst)
		}
	}},
}

// messages returns n messages of the stream with the given seed.
func (s messageStream) messages(seed uint64, n int) [][]byte {
	next := s.new(seed)
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = next(nil)
	}
	return msgs
}
