package client_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/megaws/megaws/client"
)

// gobwasEcho is a server that is not megaws: net/http with gobwas/ws's
// upgrader and wsutil's blocking reader, one goroutine per connection.
func gobwasEcho(w http.ResponseWriter, r *http.Request) {
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "echo.v1" }}
	conn, _, _, err := u.Upgrade(r, w)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
			return
		}
	}
}

func TestGobwasServer(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(gobwasEcho))
	defer plain.Close()
	secure := httptest.NewUnstartedServer(http.HandlerFunc(gobwasEcho))
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // the unknown-CA case logs a TLS error
	secure.StartTLS()
	defer secure.Close()
	roots := secure.Client().Transport.(*http.Transport).TLSClientConfig
	for _, tc := range []struct {
		name string
		url  string
		tls  *tls.Config
	}{
		{name: "ws", url: "ws" + strings.TrimPrefix(plain.URL, "http")},
		{name: "wss", url: "wss" + strings.TrimPrefix(secure.URL, "https"), tls: roots},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.url+"/echo", &client.Options{TLSConfig: tc.tls, Subprotocols: []string{"other", "echo.v1"}})
			if c.Subprotocol() != "echo.v1" {
				t.Errorf("Subprotocol %q", c.Subprotocol())
			}
			if _, ok := c.NetConn().(*tls.Conn); ok != (tc.tls != nil) {
				t.Errorf("NetConn is %T", c.NetConn())
			}
			for _, m := range []struct {
				op ws.OpCode
				p  []byte
			}{{ws.OpText, []byte("hello")}, {ws.OpBinary, pattern(300 << 10)}, {ws.OpText, []byte{}}} {
				if err := c.WriteMessage(m.op, m.p); err != nil {
					t.Fatal(err)
				}
				op, got := read(t, c)
				if op != m.op || !bytes.Equal(got, m.p) {
					t.Fatalf("echo of %d bytes: %v, %d bytes", len(m.p), op, len(got))
				}
			}
			if err := c.Close(ws.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
	t.Run("wss with an unknown CA", func(t *testing.T) {
		_, _, err := client.Dial(testCtx(t), "wss"+strings.TrimPrefix(secure.URL, "https"), nil)
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("Dial: %v, want a certificate error", err)
		}
	})
}
