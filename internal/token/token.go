// Package token issues and verifies sluice's short-lived login tokens: a
// self-hosted take on RDS IAM authentication. A token is signed with an
// Ed25519 private key that only the issuer (`sluice token`) holds; the
// proxy holds the public key and accepts a valid token in place of a
// password for users whose auth method is "token".
//
// Format: "sluice1." + base64url(JSON claims) + "." + base64url(signature),
// unpadded, where the signature covers "sluice1." + the encoded claims. The
// claims are the user, the database, and the issue and expiry times in Unix
// seconds. Tokens are bearer secrets until they expire: this package never
// puts a token, or any part of one, into an error message.
package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Prefix starts every token; it names the format version.
const Prefix = "sluice1."

// MaxLen bounds the tokens Verify looks at; real ones are ~200 bytes.
const MaxLen = 4096

// ClockSkew is how far in the future a token's issue time may be, so that
// an issuer whose clock runs a little ahead still produces usable tokens.
const ClockSkew = time.Minute

// Errors returned by Verify. None of them contains the token.
var (
	ErrMalformed     = errors.New("token: malformed")
	ErrSignature     = errors.New("token: bad signature")
	ErrExpired       = errors.New("token: expired")
	ErrNotYetValid   = errors.New("token: issued in the future")
	ErrWrongUser     = errors.New("token: issued for another user")
	ErrWrongDatabase = errors.New("token: issued for another database")
)

var b64 = base64.RawURLEncoding.Strict()

// claims is the signed payload.
type claims struct {
	User     string `json:"u"`
	Database string `json:"d"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// Issue returns a token that lets user log in to database from now until
// now+ttl (to the second). ttl must be positive.
func Issue(priv ed25519.PrivateKey, user, database string, ttl time.Duration, now time.Time) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", errors.New("token: invalid Ed25519 private key")
	}
	if user == "" || database == "" {
		return "", errors.New("token: user and database are required")
	}
	if ttl < time.Second {
		return "", fmt.Errorf("token: ttl must be at least 1s, got %s", ttl)
	}
	payload, err := json.Marshal(claims{User: user, Database: database, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix()})
	if err != nil {
		return "", err
	}
	signed := Prefix + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(signed))), nil
}

// Verify checks tok's signature against pub, then that it was issued for
// user and database, that now is before its expiry, and that it was not
// issued more than ClockSkew after now. It returns nil or one of the
// package's errors (possibly wrapped); it never panics on any input.
func Verify(pub ed25519.PublicKey, tok, user, database string, now time.Time) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("token: invalid Ed25519 public key")
	}
	if len(tok) > MaxLen || !strings.HasPrefix(tok, Prefix) || !inAlphabet(tok) {
		return ErrMalformed
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot < len(Prefix) {
		return ErrMalformed
	}
	signed, sigText := tok[:dot], tok[dot+1:]
	payloadText := signed[len(Prefix):]
	if strings.IndexByte(payloadText, '.') >= 0 {
		return ErrMalformed
	}
	sig, err := b64.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrMalformed
	}
	payload, err := b64.DecodeString(payloadText)
	if err != nil {
		return ErrMalformed
	}
	if !ed25519.Verify(pub, []byte(signed), sig) {
		return ErrSignature
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("%w: claims are not valid JSON", ErrMalformed)
	}
	switch {
	case c.User != user:
		return ErrWrongUser
	case c.Database != database:
		return ErrWrongDatabase
	case now.Unix() >= c.Expires:
		return ErrExpired
	case c.IssuedAt > now.Add(ClockSkew).Unix():
		return ErrNotYetValid
	}
	return nil
}

// inAlphabet reports whether every byte of tok is one a token can hold:
// base64url's alphabet and the dots between the parts. Go's base64
// decoder skips '\r' and '\n' even in Strict mode, so without this check
// a signature with a line break inside would decode to the same bytes and
// a token would have more than one valid spelling (found by FuzzVerify).
func inAlphabet(tok string) bool {
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
