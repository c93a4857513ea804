package arena

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Now()
	good, err := MintToken(secret, "alice_01", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := VerifyToken(secret, good, now); err != nil || name != "alice_01" {
		t.Fatalf("VerifyToken(%q) = %q, %v", good, name, err)
	}
	expired, _ := MintToken(secret, "alice", -time.Second)
	other, _ := MintToken([]byte("other"), "alice", time.Hour)
	claims, sig, _ := strings.Cut(good, ".")
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{name: "empty", token: "", want: ErrTokenMissing},
		{name: "no dots", token: "alice", want: ErrTokenMalformed},
		{name: "one dot", token: "alice.sig", want: ErrTokenMalformed},
		{name: "bad expiry", token: "alice.soon.sig", want: ErrTokenMalformed},
		{name: "bad name", token: "al ice.1.sig", want: ErrTokenMalformed},
		{name: "other secret", token: other, want: ErrTokenSignature},
		{name: "renamed", token: "mallory." + sig, want: ErrTokenSignature},
		{name: "expiry changed", token: claims + ".99999999999." + good[strings.LastIndexByte(good, '.')+1:], want: ErrTokenSignature},
		{name: "expired", token: expired, want: ErrTokenExpired},
	} {
		if _, err := VerifyToken(secret, tc.token, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, name := range []string{"", "a b", "é", strings.Repeat("x", maxName+1)} {
		if _, err := MintToken(secret, name, time.Hour); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("MintToken(%q): %v", name, err)
		}
	}
}
