package peercancel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Code is the request code of a forwarded cancel, sent in place of a
// startup packet's protocol version on an instance's normal client
// listener, like PostgreSQL's CancelRequest (1234/5678) and SSLRequest
// (1234/5679). 1234/5699 is unused by PostgreSQL, which numbers its own
// requests up from 5678 (GSSENCRequest is 1234/5680).
const Code uint32 = 1234<<16 | 5699

// The forwarded cancel, after its length word (all integers big-endian):
//
//	0   uint32   Code
//	4   uint8    Version
//	5   uint16   the sender's peer number
//	7   uint32   the key's process ID
//	11  [4]byte  the key's secret
//	15  int64    when it was sealed, Unix milliseconds
//	23  [16]byte a random nonce
//	39  [32]byte HMAC-SHA256 of bytes 0..38 under the fleet's secret
const (
	Version = 1
	// BodyLen is the message's length after its length word; PacketLen
	// with it.
	BodyLen   = 39 + sha256.Size
	PacketLen = 4 + BodyLen
	// MinSecret is the shortest fleet secret Seal and Open accept.
	MinSecret = 16
	macAt     = 39
)

// Forward is a cancel one instance asks another to perform.
type Forward struct {
	Sender    uint16 // the forwarding instance's peer number, for logs
	PID       uint32
	Secret    [4]byte
	UnixMilli int64 // when it was sealed: the receiver checks freshness
	Nonce     [16]byte
}

var (
	// ErrMalformed is a message of the wrong length, code or version.
	ErrMalformed = errors.New("malformed forwarded cancel")
	// ErrBadMAC is a message not sealed with the fleet's secret.
	ErrBadMAC = errors.New("forwarded cancel with a wrong MAC")
	// ErrShortSecret is a fleet secret shorter than MinSecret.
	ErrShortSecret = errors.New("fleet secret shorter than 16 bytes")
)

// Seal appends f as a whole packet (length word first) to dst, sealed with
// secret.
func Seal(dst, secret []byte, f Forward) ([]byte, error) {
	if len(secret) < MinSecret {
		return dst, ErrShortSecret
	}
	dst = binary.BigEndian.AppendUint32(dst, PacketLen)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, Code)
	dst = append(dst, Version)
	dst = binary.BigEndian.AppendUint16(dst, f.Sender)
	dst = binary.BigEndian.AppendUint32(dst, f.PID)
	dst = append(dst, f.Secret[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.UnixMilli))
	dst = append(dst, f.Nonce[:]...)
	mac := hmac.New(sha256.New, secret)
	mac.Write(dst[start:])
	return mac.Sum(dst), nil
}

// Open checks body (a packet after its length word, starting with Code)
// and returns the forward it carries. The MAC is compared in constant
// time; freshness and replays are the caller's (Fresh, Replays).
func Open(secret, body []byte) (Forward, error) {
	if len(secret) < MinSecret {
		return Forward{}, ErrShortSecret
	}
	if len(body) != BodyLen || binary.BigEndian.Uint32(body) != Code || body[4] != Version {
		return Forward{}, ErrMalformed
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body[:macAt])
	var sum [sha256.Size]byte
	if !hmac.Equal(mac.Sum(sum[:0]), body[macAt:]) {
		return Forward{}, ErrBadMAC
	}
	f := Forward{
		Sender:    binary.BigEndian.Uint16(body[5:]),
		PID:       binary.BigEndian.Uint32(body[7:]),
		UnixMilli: int64(binary.BigEndian.Uint64(body[15:])),
	}
	copy(f.Secret[:], body[11:15])
	copy(f.Nonce[:], body[23:39])
	return f, nil
}
