package codec

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// ValidCloseCode reports whether code may appear in a close frame received from a
// peer (RFC 6455 §7.4.1, §7.4.2 and the IANA registry): 1000-1003, 1007-1014,
// and 3000-4999. 1004, 1005, 1006 and 1015 are reserved and must never be sent;
// everything else below 3000 is unassigned.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose validates the payload of a received close frame and returns its
// status code and reason. An empty payload yields ws.StatusNoStatusRcvd (1005),
// which the caller answers with an empty close or 1000 (§7.1.5). The reason
// aliases payload.
func ParseClose(payload []byte) (code ws.StatusCode, reason []byte, err error) {
	switch len(payload) {
	case 0:
		return ws.StatusNoStatusRcvd, nil, nil
	case 1:
		return 0, nil, ErrCloseLength
	}
	code = ws.StatusCode(binary.BigEndian.Uint16(payload))
	if !ValidCloseCode(code) {
		return code, nil, ErrCloseCode
	}
	reason = payload[2:]
	if !utf8.Valid(reason) {
		return code, nil, ErrCloseReasonUTF8
	}
	return code, reason, nil
}

// AppendClose appends a server close frame with code and reason to dst. The
// reason is truncated to fit the 125-byte control payload limit, at a UTF-8
// boundary. A zero code produces a close frame with an empty payload.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 || code == ws.StatusNoStatusRcvd {
		return append(dst, finBit|byte(ws.OpClose), 0)
	}
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = append(dst, finBit|byte(ws.OpClose), byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}
