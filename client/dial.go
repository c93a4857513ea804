package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"

	"github.com/megaws/megaws/client/internal/handshake"
)

// deflateOffer is the permessage-deflate offer Dial sends with
// Options.Compression: no context takeover either way (RFC 7692 §7.1.1),
// so codec's Inflater and Deflater, which reset per message, serve it.
const deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// maxErrorBody bounds the body of a non-101 response that Dial keeps for the
// caller.
const maxErrorBody = 1 << 10

// aLongTimeAgo is a deadline in the past, to interrupt a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Dial opens a WebSocket connection to rawURL (ws:// or wss://) and performs
// the opening handshake (RFC 6455 §4.1). ctx bounds connect, TLS and the
// upgrade (together with Options.HandshakeTimeout); cancelling it aborts the
// dial. It does not outlive Dial: the connection's reads take their own ctx.
//
// The *http.Response is returned whenever the server answered, even on
// error, so a caller can look at the status, headers (Location, Set-Cookie,
// Retry-After) and up to 1 KiB of body of a refusal; a successful response
// has no body. Redirects are not followed: a 3xx answer is a
// *HandshakeError. Every Sec-WebSocket-Accept is verified; a subprotocol or
// extension the server picks must be one that was offered.
func Dial(ctx context.Context, rawURL string, opts *Options) (*Conn, *http.Response, error) {
	o := opts.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("megaws: dial: %w", err)
	}
	var secure bool
	switch strings.ToLower(u.Scheme) {
	case "ws":
	case "wss":
		secure = true
	default:
		return nil, nil, fmt.Errorf("megaws: dial %q: scheme must be ws or wss", rawURL)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, nil, fmt.Errorf("megaws: dial %q: no host", rawURL)
	}
	if u.Fragment != "" {
		return nil, nil, fmt.Errorf("megaws: dial %q: a WebSocket URL has no fragment (RFC 6455 §3)", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if secure {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	if o.Compression && (o.CompressionLevel < -2 || o.CompressionLevel > 9) {
		return nil, nil, fmt.Errorf("megaws: dial: invalid compression level %d", o.CompressionLevel)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, nil, err
	}
	var key [handshake.KeyLen]byte
	handshake.EncodeKey(&key, raw)
	req, err := requestBytes(u, &o, key[:])
	if err != nil {
		return nil, nil, err
	}

	if o.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.HandshakeTimeout)
		defer cancel()
	}
	dial := o.NetDialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, dialError(ctx, err)
	}
	c, resp, err := upgrade(ctx, nc, u, secure, req, key[:], &o)
	if err != nil {
		_ = nc.Close()
		return nil, resp, err
	}
	return c, resp, nil
}

// upgrade runs TLS (for wss) and the HTTP upgrade on nc.
func upgrade(ctx context.Context, nc net.Conn, u *url.URL, secure bool, req, key []byte, o *Options) (*Conn, *http.Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	// A cancelled ctx interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	ctxErr := func(err error) error { return dialError(ctx, err) }
	if secure {
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"} // never h2: the upgrade is HTTP/1.1's
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, ctxErr(err)
		}
		nc = tc
	}
	if _, err := nc.Write(req); err != nil {
		return nil, nil, ctxErr(err)
	}
	buf := make([]byte, 0, 1024)
	var (
		r response
		n int
	)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := nc.Read(buf[len(buf):min(cap(buf), handshake.MaxResponseHead+1)])
		buf = buf[:len(buf)+m]
		var perr error
		r.Response, n, perr = handshake.ParseResponse(buf)
		if perr != nil {
			return nil, nil, &HandshakeError{Reason: strings.TrimPrefix(perr.Error(), "megaws: ")}
		}
		if n > 0 {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, ctxErr(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:n])), &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, nil, &HandshakeError{StatusCode: r.Status, Reason: err.Error()}
	}
	if r.Status != http.StatusSwitchingProtocols {
		readErrorBody(resp, buf, nc)
		reason := "status " + resp.Status
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
			reason += " (redirect to " + loc + ", not followed)"
		}
		return nil, resp, &HandshakeError{StatusCode: r.Status, Reason: reason}
	}
	fail := func(err error) (*Conn, *http.Response, error) {
		var he *handshake.Error
		if errors.As(err, &he) {
			return nil, resp, &HandshakeError{StatusCode: he.Status, Reason: he.Reason}
		}
		return nil, resp, &HandshakeError{StatusCode: r.Status, Reason: err.Error()}
	}
	if err := r.CheckUpgrade(key); err != nil {
		return fail(err)
	}
	proto, err := r.CheckProtocol(o.Subprotocols)
	if err != nil {
		return fail(err)
	}
	deflate, err := r.negotiateDeflate(o.Compression)
	if err != nil {
		return fail(err)
	}
	if !stop() {
		return nil, resp, ctxErr(ctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	return newConn(nc, buf[n:], o, proto, deflate), resp, nil
}

// dialError wraps err, or ctx's error when ctx ended the dial: the socket's
// deadline is ctx's and may fire a moment before ctx reports it.
func dialError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	} else if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		err = context.DeadlineExceeded
	}
	return fmt.Errorf("megaws: dial: %w", err)
}

// response is the parsed head, with the extension check.
type response struct{ handshake.Response }

// negotiateDeflate checks the server's Sec-WebSocket-Extensions against the
// offer: only permessage-deflate may come back, only if offered, at most
// once, with server_no_context_takeover (the offer asked for it, §7.1.1.1)
// and no client_max_window_bits below 15 (not offered, and compress/flate
// cannot write with a smaller window).
func (r *response) negotiateDeflate(offered bool) (bool, error) {
	if !r.HasExtensions || len(bytes.TrimSpace(r.Extensions)) == 0 {
		return false, nil
	}
	if r.RepeatedExtensions() {
		return false, errors.New("repeated Sec-WebSocket-Extensions")
	}
	opts, ok := httphead.ParseOptions(r.Extensions, nil)
	if !ok {
		return false, fmt.Errorf("malformed Sec-WebSocket-Extensions %q", r.Extensions)
	}
	if len(opts) != 1 || !bytes.Equal(opts[0].Name, wsflate.ExtensionNameBytes) || !offered {
		return false, fmt.Errorf("server selected extensions %q, which were not offered", r.Extensions)
	}
	var p wsflate.Parameters
	if err := p.Parse(opts[0]); err != nil {
		return false, fmt.Errorf("permessage-deflate parameters: %v", err)
	}
	if !p.ServerNoContextTakeover {
		return false, errors.New("permessage-deflate accepted without server_no_context_takeover")
	}
	if p.ClientMaxWindowBits.Defined() && p.ClientMaxWindowBits != 15 {
		return false, fmt.Errorf("permessage-deflate client_max_window_bits=%d cannot be honoured", p.ClientMaxWindowBits)
	}
	return true, nil
}

// requestBytes builds the upgrade request.
func requestBytes(u *url.URL, o *Options, key []byte) ([]byte, error) {
	var extra []byte
	if o.Origin != "" {
		if strings.ContainsAny(o.Origin, "\r\n") {
			return nil, errors.New("megaws: dial: invalid Origin")
		}
		extra = append(append(append(extra, "Origin: "...), o.Origin...), "\r\n"...)
	}
	if len(o.Subprotocols) > 0 {
		for _, p := range o.Subprotocols {
			if p == "" || !validToken(p) {
				return nil, fmt.Errorf("megaws: dial: invalid subprotocol %q", p)
			}
		}
		extra = append(extra, "Sec-WebSocket-Protocol: "...)
		extra = append(extra, strings.Join(o.Subprotocols, ", ")...)
		extra = append(extra, "\r\n"...)
	}
	if o.Compression {
		extra = append(extra, "Sec-WebSocket-Extensions: "+deflateOffer+"\r\n"...)
	}
	if u.User != nil && o.Header.Get("Authorization") == "" {
		pw, _ := u.User.Password()
		extra = append(extra, "Authorization: Basic "...)
		extra = append(extra, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))...)
		extra = append(extra, "\r\n"...)
	}
	extra, err := handshake.AppendHeader(extra, o.Header)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if h := o.Header.Get("Host"); h != "" {
		if strings.ContainsAny(h, "\r\n") {
			return nil, errors.New("megaws: dial: invalid Host header")
		}
		host = h
	}
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	return handshake.AppendRequest(nil, target, host, key, extra), nil
}

// readErrorBody replaces resp.Body with at most maxErrorBody bytes of the
// body, read from raw (the bytes read so far, head included) and then nc for
// at most a second, so the caller may read it after the connection is
// closed.
func readErrorBody(resp *http.Response, raw []byte, nc net.Conn) {
	var body io.ReadCloser = http.NoBody
	defer func() { resp.Body = body }()
	if resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return
	}
	// Re-read the whole response to let net/http decode the body framing
	// (Content-Length, chunked or until EOF).
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	full, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), nc)), resp.Request)
	if err != nil {
		return
	}
	defer full.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(full.Body, maxErrorBody))
	body = io.NopCloser(bytes.NewReader(b))
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
