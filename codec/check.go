package codec

import "github.com/gobwas/ws"

// CheckClientHeader validates the header of a frame received by a server against
// RFC 6455 §5 (and RFC 7692 §6 when deflate was negotiated). fragOp is the opcode
// of the fragmented data message in progress, or 0 when none is. It returns one
// of the *ProtocolError values of this package.
func CheckClientHeader(h ws.Header, fragOp ws.OpCode, deflate bool) error {
	if !h.Masked {
		return ErrUnmaskedFrame // §5.1
	}
	return checkHeader(h, fragOp, deflate)
}

// CheckServerHeader is CheckClientHeader for frames a client receives: they
// must not be masked (§5.1).
func CheckServerHeader(h ws.Header, fragOp ws.OpCode, deflate bool) error {
	if h.Masked {
		return ErrMaskedFrame
	}
	return checkHeader(h, fragOp, deflate)
}

func checkHeader(h ws.Header, fragOp ws.OpCode, deflate bool) error {
	op := h.OpCode
	if op.IsReserved() {
		return ErrReservedOpCode // §5.2
	}
	if op.IsControl() {
		switch {
		case h.Length > MaxControlPayload:
			return ErrControlTooLong // §5.5
		case !h.Fin:
			return ErrControlFragmented // §5.5
		case h.Rsv == rsv1 && deflate:
			return ErrCompressedControl // RFC 7692 §6.1
		case h.Rsv != 0:
			return ErrReservedBits
		}
		return nil
	}
	if h.Rsv&^rsv1 != 0 || (h.Rsv == rsv1 && !deflate) {
		return ErrReservedBits // §5.2
	}
	if op == ws.OpContinuation {
		if fragOp == 0 {
			return ErrUnexpectedContinue // §5.4
		}
		if h.Rsv != 0 {
			return ErrCompressedContinue // RFC 7692 §6.1
		}
		return nil
	}
	if fragOp != 0 {
		return ErrExpectedContinue // §5.4
	}
	return nil
}
