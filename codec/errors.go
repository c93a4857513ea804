package codec

import (
	"errors"

	"github.com/gobwas/ws"
)

// ProtocolError is a violation of RFC 6455 (or RFC 7692) by the peer, with the
// close status code the endpoint must send before failing the connection
// (RFC 6455 §7.1.7, §7.4.1).
type ProtocolError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *ProtocolError) Error() string { return "megaws: " + e.Reason }

// The protocol violations codec detects. This table is the one place that maps
// each violation to its close code.
var (
	ErrUnmaskedFrame      = &ProtocolError{ws.StatusProtocolError, "client frame is not masked"}
	ErrMaskedFrame        = &ProtocolError{ws.StatusProtocolError, "server frame is masked"}
	ErrReservedBits       = &ProtocolError{ws.StatusProtocolError, "reserved bits set without a negotiated extension"}
	ErrReservedOpCode     = &ProtocolError{ws.StatusProtocolError, "reserved opcode"}
	ErrControlTooLong     = &ProtocolError{ws.StatusProtocolError, "control frame payload longer than 125 bytes"}
	ErrControlFragmented  = &ProtocolError{ws.StatusProtocolError, "fragmented control frame"}
	ErrUnexpectedContinue = &ProtocolError{ws.StatusProtocolError, "continuation frame without a message in progress"}
	ErrExpectedContinue   = &ProtocolError{ws.StatusProtocolError, "new data frame while a fragmented message is in progress"}
	ErrLengthMSB          = &ProtocolError{ws.StatusProtocolError, "64-bit payload length has its most significant bit set"}
	ErrCloseLength        = &ProtocolError{ws.StatusProtocolError, "close frame payload of 1 byte"}
	ErrCloseCode          = &ProtocolError{ws.StatusProtocolError, "invalid close status code"}
	ErrCloseReasonUTF8    = &ProtocolError{ws.StatusInvalidFramePayloadData, "close reason is not valid UTF-8"}
	ErrInvalidUTF8        = &ProtocolError{ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8"}
	ErrMessageTooBig      = &ProtocolError{ws.StatusMessageTooBig, "message exceeds the size limit"}
	ErrCompressedControl  = &ProtocolError{ws.StatusProtocolError, "compressed control frame"}
	ErrCompressedContinue = &ProtocolError{ws.StatusProtocolError, "RSV1 set on a continuation frame"}
	ErrInflate            = &ProtocolError{ws.StatusInvalidFramePayloadData, "invalid deflate data"}
)

// CloseCode returns the close status code to send for err: the code of a
// *ProtocolError, ws.StatusNormalClosure for nil, and ws.StatusInternalServerError
// for anything else.
func CloseCode(err error) ws.StatusCode {
	if err == nil {
		return ws.StatusNormalClosure
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ws.StatusInternalServerError
}
