package scenario

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
)

// tcpSock is one IPv4 TCP socket as /proc/net/tcp lists it.
type tcpSock struct {
	Local, Remote netip.AddrPort
	State         string
	TxQueue       int64 // bytes in the send queue (unacknowledged)
	RxQueue       int64 // bytes received and not read
}

// tcpStates names the st column of /proc/net/tcp (include/net/tcp_states.h).
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
	"09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}

// tcpView is what one scan of /proc/net/tcp says about the connections to
// one server: its ends by peer address, and the peers' ends by local address.
type tcpView struct {
	Server map[netip.AddrPort]tcpSock // the server's end, keyed by the client's address
	Client map[netip.AddrPort]tcpSock // the client's end, keyed by its own address
}

// scanTCP reads /proc/net/tcp and keeps the sockets of connections to server.
func scanTCP(server netip.AddrPort) (tcpView, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return tcpView{}, err
	}
	return parseTCP(b, server), nil
}

func parseTCP(b []byte, server netip.AddrPort) tcpView {
	v := tcpView{Server: map[netip.AddrPort]tcpSock{}, Client: map[netip.AddrPort]tcpSock{}}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		f := bytes.Fields(line)
		if len(f) < 5 || !bytes.HasSuffix(f[0], []byte(":")) {
			continue // the header line, or a blank one
		}
		local, ok1 := parseProcAddr(f[1])
		remote, ok2 := parseProcAddr(f[2])
		if !ok1 || !ok2 || remote.Port() == 0 {
			continue // a listener
		}
		s := tcpSock{Local: local, Remote: remote, State: tcpStates[string(f[3])]}
		if s.State == "" {
			s.State = "state " + string(f[3])
		}
		if tx, rx, ok := bytes.Cut(f[4], []byte(":")); ok {
			s.TxQueue, _ = strconv.ParseInt(string(tx), 16, 64)
			s.RxQueue, _ = strconv.ParseInt(string(rx), 16, 64)
		}
		switch {
		case local == server:
			v.Server[remote] = s
		case remote == server:
			v.Client[local] = s
		}
	}
	return v
}

// parseProcAddr reads "0100007F:1F90": the IPv4 address as the kernel's
// 32-bit word printed in hex (so in host byte order, little endian here),
// then the port in hex.
func parseProcAddr(b []byte) (netip.AddrPort, bool) {
	a, p, ok := bytes.Cut(b, []byte(":"))
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	var raw [4]byte
	if _, err := hex.Decode(raw[:], a); err != nil {
		return netip.AddrPort{}, false
	}
	word := binary.BigEndian.Uint32(raw[:])
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], word)
	port, err := strconv.ParseUint(string(p), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), true
}
