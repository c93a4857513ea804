package codec

import (
	"bytes"
	"strconv"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// DeflatePolicy says how a server answers permessage-deflate offers with
// context takeover (RFC 7692 §7.1). The zero value agrees to no context
// takeover in either direction, as DeflateResponse does.
type DeflatePolicy struct {
	// ServerWindowBits is the LZ77 window, 8 to 15 bits, that the server
	// compresses with and keeps per connection under context takeover; 0
	// means server_no_context_takeover. A client's server_max_window_bits
	// lowers it.
	ServerWindowBits int
	// ClientWindowBits is the largest window, 9 to 15 bits, that the server
	// keeps per connection to decompress a client's messages under context
	// takeover; 0 means client_no_context_takeover. The server can only ask
	// a client that offered client_max_window_bits for a smaller window
	// (RFC 7692 §7.1.2.2): any other client compresses with 15 bits, so below
	// 15 it is answered with client_no_context_takeover.
	ClientWindowBits int
}

// DeflateParams are the permessage-deflate parameters agreed for one
// connection. Under takeover, the connection keeps a History of
// ServerWindowBits for what it sends and one of ClientWindowBits for what it
// receives.
type DeflateParams struct {
	ServerTakeover bool
	// ServerWindowBits bounds the compressor's back-references whether or not
	// there is takeover (server_max_window_bits).
	ServerWindowBits int
	// serverBitsSent is whether the response states server_max_window_bits.
	serverBitsSent bool

	ClientTakeover bool
	// ClientWindowBits is the window to keep for the client's messages: the
	// agreed client_max_window_bits, but at least 9 because zlib compresses
	// with 9 when told 8.
	ClientWindowBits int
	// clientBits is the client_max_window_bits value of the response, 0 for none.
	clientBits int
}

// NegotiateDeflateParams picks the first of the client's permessage-deflate
// offers (RFC 7692 §5) that is well formed and returns the parameters the
// server agrees to under policy. Every well-formed offer can be accepted:
// WindowDeflater honours any server_max_window_bits, 8 included. It reports
// false if there is no such offer.
func (r *Request) NegotiateDeflateParams(policy DeflatePolicy) (DeflateParams, bool) {
	var params DeflateParams
	ok := false
	r.ExtensionLines(func(line []byte) bool {
		opts, valid := httphead.ParseOptions(line, nil)
		if !valid {
			return true
		}
		for _, opt := range opts {
			if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
				continue
			}
			var p wsflate.Parameters
			if p.Parse(opt) != nil {
				continue
			}
			params, ok = agreeDeflate(p, policy), true
			return false
		}
		return true
	})
	return params, ok
}

func agreeDeflate(offer wsflate.Parameters, policy DeflatePolicy) DeflateParams {
	var a DeflateParams
	a.ServerTakeover = policy.ServerWindowBits != 0 && !offer.ServerNoContextTakeover
	a.ServerWindowBits = MaxWindowBits
	if a.ServerTakeover {
		a.ServerWindowBits = min(max(policy.ServerWindowBits, MinWindowBits), MaxWindowBits)
	}
	if offer.ServerMaxWindowBits.Defined() {
		a.ServerWindowBits = min(a.ServerWindowBits, int(offer.ServerMaxWindowBits))
	}
	a.serverBitsSent = offer.ServerMaxWindowBits.Defined() || a.ServerWindowBits < MaxWindowBits

	a.ClientTakeover = policy.ClientWindowBits != 0 && !offer.ClientNoContextTakeover
	a.ClientWindowBits = MaxWindowBits
	if a.ClientTakeover {
		bits := min(max(policy.ClientWindowBits, 9), MaxWindowBits)
		switch {
		case offer.ClientMaxWindowBits.Defined():
			if offer.ClientMaxWindowBits > 1 { // a value, not the bare parameter
				bits = min(bits, int(offer.ClientMaxWindowBits))
			}
			a.clientBits = bits
			a.ClientWindowBits = max(bits, 9)
		case bits < MaxWindowBits:
			a.ClientTakeover = false
		}
	}
	return a
}

// AppendResponse appends the Sec-WebSocket-Extensions value that states p,
// such as "permessage-deflate; server_max_window_bits=10;
// client_max_window_bits=10".
func (p DeflateParams) AppendResponse(dst []byte) []byte {
	dst = append(dst, wsflate.ExtensionName...)
	if !p.ServerTakeover {
		dst = append(dst, "; server_no_context_takeover"...)
	}
	if !p.ClientTakeover {
		dst = append(dst, "; client_no_context_takeover"...)
	}
	if p.serverBitsSent {
		dst = append(dst, "; server_max_window_bits="...)
		dst = strconv.AppendInt(dst, int64(p.ServerWindowBits), 10)
	}
	if p.ClientTakeover && p.clientBits != 0 {
		dst = append(dst, "; client_max_window_bits="...)
		dst = strconv.AppendInt(dst, int64(p.clientBits), 10)
	}
	return dst
}
