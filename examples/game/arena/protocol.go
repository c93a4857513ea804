package arena

import (
	"encoding/binary"
	"unicode/utf8"
)

// The wire protocol: every message is one binary WebSocket message whose
// first byte is its type; integers are big-endian (network order, what a
// browser's DataView reads by default). Client messages are 0x0_, server
// messages 0x1_.
//
//	client → server
//	  Input     0x01 dx:i8 dy:i8                                    3 bytes
//	  Chat      0x02 text:UTF-8 (1..MaxChat bytes)
//	server → client
//	  Welcome   0x10 player:u32 match:u32 matchSize:u8 tickRate:u8  11 bytes
//	  Snapshot  0x11 tick:u32 stamp:i64 players:u8 npcs:u16         16 bytes
//	                 players × (id:u32 x:i16 y:i16)  npcs × (x:i16 y:i16)
//	  ChatFrom  0x12 from:u32 text:UTF-8 (from 0: the server)
//	  Joined    0x13 player:u32 name:UTF-8
//	  Left      0x14 player:u32
//
// Input is the direction a player pushes (-127..127 on each axis, full speed
// at ±127); the server applies the latest one at every tick. stamp is the
// server's clock (Unix nanoseconds) when the tick that produced the snapshot
// started, so a client on the same clock measures the state's age. Positions
// are world units, 0..WorldSize.
const (
	MsgInput    byte = 0x01
	MsgChat     byte = 0x02
	MsgWelcome  byte = 0x10
	MsgSnapshot byte = 0x11
	MsgChatFrom byte = 0x12
	MsgJoined   byte = 0x13
	MsgLeft     byte = 0x14
)

// Protocol sizes.
const (
	MaxChat            = 200 // bytes of chat text
	WorldSize          = 1000
	welcomeLen         = 11
	SnapshotHeaderLen  = 16
	snapshotPlayerLen  = 8
	snapshotNPCLen     = 4
	maxSnapshotPlayers = 255
	maxSnapshotNPCs    = 65535
)

// AppendInput appends an Input message to dst.
func AppendInput(dst []byte, dx, dy int8) []byte {
	return append(dst, MsgInput, byte(dx), byte(dy))
}

// AppendChat appends a Chat message carrying text to dst.
func AppendChat(dst []byte, text string) []byte {
	return append(append(dst, MsgChat), text...)
}

// Welcome is the first message a player gets, once it is in a match.
type Welcome struct {
	Player    uint32 // the player's id, as in snapshots and chat
	Match     uint32 // N of the match's room, "match-N"
	MatchSize uint8  // most players in a match
	TickRate  uint8  // snapshots per second
}

// AppendWelcome appends w as a Welcome message to dst.
func AppendWelcome(dst []byte, w Welcome) []byte {
	dst = append(dst, MsgWelcome)
	dst = binary.BigEndian.AppendUint32(dst, w.Player)
	dst = binary.BigEndian.AppendUint32(dst, w.Match)
	return append(dst, w.MatchSize, w.TickRate)
}

// ParseWelcome decodes a Welcome message.
func ParseWelcome(p []byte) (Welcome, bool) {
	if len(p) != welcomeLen || p[0] != MsgWelcome {
		return Welcome{}, false
	}
	return Welcome{
		Player:    binary.BigEndian.Uint32(p[1:]),
		Match:     binary.BigEndian.Uint32(p[5:]),
		MatchSize: p[9],
		TickRate:  p[10],
	}, true
}

// SnapshotHeader is the fixed part of a Snapshot message.
type SnapshotHeader struct {
	Tick    uint32 // the match's tick number, from 1
	Stamp   int64  // server time of the tick, Unix nanoseconds
	Players int
	NPCs    int
}

// ParseSnapshot decodes a Snapshot's header and checks that p holds the
// entries it announces; Player and NPC read them.
func ParseSnapshot(p []byte) (SnapshotHeader, bool) {
	if len(p) < SnapshotHeaderLen || p[0] != MsgSnapshot {
		return SnapshotHeader{}, false
	}
	h := SnapshotHeader{
		Tick:    binary.BigEndian.Uint32(p[1:]),
		Stamp:   int64(binary.BigEndian.Uint64(p[5:])),
		Players: int(p[13]),
		NPCs:    int(binary.BigEndian.Uint16(p[14:])),
	}
	if len(p) != SnapshotHeaderLen+h.Players*snapshotPlayerLen+h.NPCs*snapshotNPCLen {
		return SnapshotHeader{}, false
	}
	return h, true
}

// Player returns the i-th player entry of a snapshot checked by ParseSnapshot.
func Player(p []byte, i int) (id uint32, x, y int16) {
	e := p[SnapshotHeaderLen+i*snapshotPlayerLen:]
	return binary.BigEndian.Uint32(e), int16(binary.BigEndian.Uint16(e[4:])), int16(binary.BigEndian.Uint16(e[6:]))
}

// NPC returns the position of the i-th NPC of a snapshot checked by
// ParseSnapshot with h.
func NPC(p []byte, h SnapshotHeader, i int) (x, y int16) {
	e := p[SnapshotHeaderLen+h.Players*snapshotPlayerLen+i*snapshotNPCLen:]
	return int16(binary.BigEndian.Uint16(e)), int16(binary.BigEndian.Uint16(e[2:]))
}

// AppendChatFrom appends a ChatFrom message to dst.
func AppendChatFrom(dst []byte, from uint32, text []byte) []byte {
	dst = append(dst, MsgChatFrom)
	dst = binary.BigEndian.AppendUint32(dst, from)
	return append(dst, text...)
}

// ParseChatFrom decodes a ChatFrom message; text aliases p.
func ParseChatFrom(p []byte) (from uint32, text []byte, ok bool) {
	if len(p) < 5 || p[0] != MsgChatFrom {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(p[1:]), p[5:], true
}

// AppendJoined appends a Joined message to dst.
func AppendJoined(dst []byte, player uint32, name string) []byte {
	dst = append(dst, MsgJoined)
	dst = binary.BigEndian.AppendUint32(dst, player)
	return append(dst, name...)
}

// AppendLeft appends a Left message to dst.
func AppendLeft(dst []byte, player uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, MsgLeft), player)
}

// ParsePlayerEvent decodes a Joined or Left message: the player and, for
// Joined, its name (aliasing p).
func ParsePlayerEvent(p []byte) (typ byte, player uint32, name []byte, ok bool) {
	if len(p) < 5 || (p[0] != MsgJoined && p[0] != MsgLeft) || (p[0] == MsgLeft && len(p) != 5) {
		return 0, 0, nil, false
	}
	return p[0], binary.BigEndian.Uint32(p[1:]), p[5:], true
}

// validChat reports whether text may be relayed: 1 to MaxChat bytes of UTF-8.
func validChat(text []byte) bool {
	return len(text) > 0 && len(text) <= MaxChat && utf8.Valid(text)
}
