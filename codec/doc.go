// Package codec is megaws's protocol layer: bytes in, frames and handshakes out.
//
// It implements the RFC 6455 opening handshake and framing (and the RFC 7692
// framing rules for permessage-deflate) as pure functions over byte slices that
// the caller owns. Nothing here does I/O, starts goroutines, logs, or keeps a
// reference to its input after returning, so the same code serves the gnet event
// loop in package server and the load generator in the bench module.
//
// Parsing is incremental: every parser accepts whatever bytes have arrived so far
// and answers "need more" (a zero length and a nil error), a result, or an error
// that carries the answer the RFC requires (an HTTP status for handshakes, a
// close status code for frames). Encoders follow the Append convention: they
// append to dst and return the extended slice, allocating only if dst is too small.
//
// Vocabulary and types (ws.Header, ws.OpCode, ws.StatusCode) are gobwas/ws's.
package codec
