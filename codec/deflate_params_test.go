package codec

import (
	"testing"
)

// TestNegotiateDeflateParams checks the answers to permessage-deflate offers
// (RFC 7692 §7.1) under several policies.
func TestNegotiateDeflateParams(t *testing.T) {
	small := DeflatePolicy{ServerWindowBits: 10, ClientWindowBits: 10}
	for _, tc := range []struct {
		name     string
		offer    string
		policy   DeflatePolicy
		ok       bool
		want     DeflateParams
		response string
	}{
		{
			name:     "no takeover policy",
			offer:    "permessage-deflate; client_max_window_bits",
			want:     DeflateParams{ServerWindowBits: 15, ClientWindowBits: 15},
			ok:       true,
			response: DeflateResponse,
		},
		{
			name:     "browser offer",
			offer:    "permessage-deflate; client_max_window_bits",
			policy:   small,
			ok:       true,
			want:     DeflateParams{ServerTakeover: true, ServerWindowBits: 10, ClientTakeover: true, ClientWindowBits: 10},
			response: "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
		},
		{
			name:     "client cannot be limited",
			offer:    "permessage-deflate",
			policy:   small,
			ok:       true,
			want:     DeflateParams{ServerTakeover: true, ServerWindowBits: 10, ClientWindowBits: 15},
			response: "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
		},
		{
			name:     "full windows",
			offer:    "permessage-deflate",
			policy:   DeflatePolicy{ServerWindowBits: 15, ClientWindowBits: 15},
			ok:       true,
			want:     DeflateParams{ServerTakeover: true, ServerWindowBits: 15, ClientTakeover: true, ClientWindowBits: 15},
			response: "permessage-deflate",
		},
		{
			name:     "client limits the server to 8 bits and itself to 8",
			offer:    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
			policy:   small,
			ok:       true,
			want:     DeflateParams{ServerTakeover: true, ServerWindowBits: 8, ClientTakeover: true, ClientWindowBits: 9},
			response: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		},
		{
			name:     "client refuses takeover both ways",
			offer:    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
			policy:   small,
			ok:       true,
			want:     DeflateParams{ServerWindowBits: 12, ClientWindowBits: 15},
			response: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
		},
		{
			name:     "first well-formed offer wins",
			offer:    "permessage-deflate; server_max_window_bits=7, permessage-deflate; bogus, x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=12",
			policy:   DeflatePolicy{ServerWindowBits: 11, ClientWindowBits: 14},
			ok:       true,
			want:     DeflateParams{ServerTakeover: true, ServerWindowBits: 11, ClientTakeover: true, ClientWindowBits: 12},
			response: "permessage-deflate; server_max_window_bits=11; client_max_window_bits=12",
		},
		{
			name:  "nothing acceptable",
			offer: "permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Extensions: " + tc.offer + "\r\n\r\n"
			r, _, err := ParseRequest([]byte(raw), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.NegotiateDeflateParams(tc.policy)
			if ok != tc.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if got.ServerTakeover != tc.want.ServerTakeover || got.ServerWindowBits != tc.want.ServerWindowBits ||
				got.ClientTakeover != tc.want.ClientTakeover || got.ClientWindowBits != tc.want.ClientWindowBits {
				t.Fatalf("params %+v, want %+v", got, tc.want)
			}
			if resp := string(got.AppendResponse(nil)); resp != tc.response {
				t.Fatalf("response %q, want %q", resp, tc.response)
			}
		})
	}
}
