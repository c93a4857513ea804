package arena

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DemoSecret is the HMAC key the example uses when none is given. A real
// deployment shares a secret between the login service that mints tokens and
// the game servers that verify them.
const DemoSecret = "megaws-game-demo-secret"

// Token errors; OnUpgrade answers all of them with HTTP 401.
var (
	ErrTokenMissing   = errors.New("arena: no token")
	ErrTokenMalformed = errors.New("arena: malformed token")
	ErrTokenExpired   = errors.New("arena: token expired")
	ErrTokenSignature = errors.New("arena: bad token signature")
)

// maxName bounds a player name.
const maxName = 32

// MintToken returns a token for player name valid for ttl:
// "<name>.<expiry, Unix seconds>.<signature>", the signature being the first
// 128 bits of HMAC-SHA256(secret, "<name>.<expiry>"), base64url. It is what a
// login service would hand a client; the game server needs only the secret to
// check it, no session store. name is 1 to 32 of [A-Za-z0-9_-].
func MintToken(secret []byte, name string, ttl time.Duration) (string, error) {
	if !validName(name) {
		return "", ErrTokenMalformed
	}
	claims := name + "." + strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	return claims + "." + sign(secret, claims), nil
}

// VerifyToken checks token against secret at time now and returns the
// player name it was minted for.
func VerifyToken(secret []byte, token string, now time.Time) (string, error) {
	if token == "" {
		return "", ErrTokenMissing
	}
	dot := strings.LastIndexByte(token, '.')
	if dot < 0 {
		return "", ErrTokenMalformed
	}
	claims, sig := token[:dot], token[dot+1:]
	name, exp, ok := strings.Cut(claims, ".")
	if !ok || !validName(name) {
		return "", ErrTokenMalformed
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", ErrTokenMalformed
	}
	if !hmac.Equal([]byte(sig), []byte(sign(secret, claims))) {
		return "", ErrTokenSignature
	}
	if now.Unix() >= expiry {
		return "", ErrTokenExpired
	}
	return name, nil
}

func sign(secret []byte, claims string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(claims))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func validName(name string) bool {
	if len(name) == 0 || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}
