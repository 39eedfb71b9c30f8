package config

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// PasswordKind says how a users[].password is stored.
type PasswordKind int

const (
	PasswordPlain PasswordKind = iota // the password itself
	PasswordMD5                       // "md5" + hex(md5(password + username)), as in pg_authid
	PasswordSCRAM                     // "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>", as in pg_authid
)

const scramPrefix = "SCRAM-SHA-256$"

// ClassifyPassword tells which form s has, with PostgreSQL's rules: "md5"
// followed by exactly 32 lowercase hex digits is an md5 hash, anything that
// starts with "SCRAM-SHA-256$" is a SCRAM verifier (Parse rejects malformed
// ones), everything else is plaintext.
func ClassifyPassword(s string) PasswordKind {
	switch {
	case strings.HasPrefix(s, scramPrefix):
		return PasswordSCRAM
	case len(s) == 35 && strings.HasPrefix(s, "md5") && strings.Trim(s[3:], "0123456789abcdef") == "":
		return PasswordMD5
	default:
		return PasswordPlain
	}
}

// PasswordKind classifies u.Password.
func (u *User) PasswordKind() PasswordKind { return ClassifyPassword(u.Password) }

// checkSCRAM validates the shape of a SCRAM-SHA-256 verifier.
func checkSCRAM(s string) error {
	rest := strings.TrimPrefix(s, scramPrefix)
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return errors.New("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	iter, salt, ok1 := strings.Cut(params, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return errors.New("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	if n, err := strconv.Atoi(iter); err != nil || n < 1 {
		return errors.New("iteration count must be a positive integer")
	}
	if b, err := base64.StdEncoding.DecodeString(salt); err != nil || len(b) == 0 {
		return errors.New("salt is not valid base64")
	}
	for _, k := range []string{stored, server} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
			return errors.New("StoredKey and ServerKey must be base64 of 32 bytes")
		}
	}
	return nil
}
