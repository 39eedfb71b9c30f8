// Package handoff is the transport between a running sluice and the new
// process it starts for an upgrade: a versioned exchange of messages over
// a Unix stream socket, each a kind, a bounded payload and up to MaxFiles
// file descriptors passed with SCM_RIGHTS.
//
// The framing is fixed for Protocol 1 (an 8-byte header: kind, number of
// files, two zero bytes, the payload's length big-endian). What a client's
// state looks like is versioned apart (Hello.ClientFormat), so that two
// binaries whose client states differ still hand over their listeners and
// fall back to draining clients, never to dropping them. The hello may
// carry, behind its version text, the old process's seat in a fleet
// (Hello.Fleet), which older binaries read as part of that text.
//
// This file has no I/O: the header and payload decoders the fuzz target
// (FuzzDecode) runs.
package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Protocol is the version of the framing and of the listener, ready, done
// and abort messages. Two processes with different Protocol values do not
// hand anything over (the old one keeps serving).
const Protocol = 1

// EnvFD names the environment variable that tells a new process which
// inherited descriptor is its end of the hand-off socket.
const EnvFD = "SLUICE_HANDOFF_FD"

// Limits on one message: payloads are read in growing steps up to
// MaxPayload (a client's state with its prepared statements can be
// large), so a bogus length costs at most what the peer really sent.
const (
	MaxPayload   = 64 << 20
	MaxFiles     = 8
	headerLen    = 8
	maxRole      = 64
	maxAddress   = 1024
	maxAbortText = 4096
	maxVersion   = 256
)

// Kind is what a message is.
type Kind uint8

// The message kinds. Hello goes both ways first; then the old process
// sends Listener messages and Done, the new one Ready (or Abort), and the
// old one Client messages, each answered by Adopted, then Done. When the
// old process's first Done (after the listeners) says so
// (DoneTakesCancels), the new one may send it Cancel messages any time
// after Ready, until the old process closes the socket as it exits: the
// CancelRequests the new process got for keys it does not know.
const (
	KindHello    Kind = 1
	KindListener Kind = 2 // payload: EncodeListener; one file: the listening socket
	KindReady    Kind = 3 // the new process serves on the listeners
	KindClient   Kind = 4 // payload: the client's state (proxy's codec); files: its sockets
	KindDone     Kind = 5 // no more listeners / clients follow
	KindAbort    Kind = 6 // payload: why (text); the sender gives up the upgrade
	KindAdopted  Kind = 7 // payload: EncodeAdopted; the answer to each Client
	KindCancel   Kind = 8 // payload: EncodeCancel; only to an old process whose Done said DoneTakesCancels
	maxKind           = KindCancel
)

func (k Kind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindListener:
		return "listener"
	case KindReady:
		return "ready"
	case KindClient:
		return "client"
	case KindDone:
		return "done"
	case KindAbort:
		return "abort"
	case KindAdopted:
		return "adopted"
	case KindCancel:
		return "cancel"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrFrame is wrapped by every error about a malformed message.
var ErrFrame = errors.New("malformed hand-off message")

type header struct {
	kind   Kind
	files  int
	length int
}

func putHeader(b []byte, kind Kind, files, length int) {
	b[0] = byte(kind)
	b[1] = byte(files)
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint32(b[4:8], uint32(length))
}

// parseHeader checks one message's header.
func parseHeader(b []byte) (header, error) {
	if len(b) != headerLen {
		return header{}, fmt.Errorf("%w: header of %d bytes", ErrFrame, len(b))
	}
	h := header{kind: Kind(b[0]), files: int(b[1]), length: int(binary.BigEndian.Uint32(b[4:8]))}
	switch {
	case h.kind == 0 || h.kind > maxKind:
		return h, fmt.Errorf("%w: unknown kind %d", ErrFrame, b[0])
	case b[2] != 0 || b[3] != 0:
		return h, fmt.Errorf("%w: reserved header bytes set", ErrFrame)
	case h.files > MaxFiles:
		return h, fmt.Errorf("%w: %d files (at most %d)", ErrFrame, h.files, MaxFiles)
	case h.length > MaxPayload:
		return h, fmt.Errorf("%w: payload of %d bytes (at most %d)", ErrFrame, h.length, MaxPayload)
	}
	return h, nil
}

// Hello is what each side says first.
type Hello struct {
	Protocol uint16
	// ClientFormat is the version of the client state the sender's proxy
	// exports and adopts (0: it moves no clients). Clients are handed
	// over only when both sides name the same format; else they drain.
	ClientFormat uint32
	PID          int
	Version      string // sluice's version, for the logs
	// Fleet is the old process's place in its fleet (zero: none, or a
	// binary that does not say): the new process takes it over rather
	// than registering as a stranger (see FleetSeat).
	Fleet FleetSeat
}

// FleetSeat is what an old process in a fleet tells its successor: the
// peer number it holds (which every cancel key it issued carries) and
// its incarnation (which, with the instance id, is the value of its
// peer number's key in etcd), so that the new process may move that key
// and the member record to its own lease instead of waiting for them to
// be free. The new process checks both against etcd: a seat the old
// process no longer holds is not taken.
type FleetSeat struct {
	PeerID      uint16
	Incarnation string
}

// The hello's optional extension: after the version text, a NUL (which
// a version never contains), the extension's format and its fields. A
// binary that predates it reads it as part of the version text (used in
// logs only), so an old process may send it to any new one; a format
// this binary does not know is ignored, as an absent one.
const (
	helloExtFleet  = 1
	maxIncarnation = 64
)

var helloMagic = [8]byte{'s', 'l', 'u', 'i', 'c', 'e', 'H', 'O'}

// EncodeHello is the payload of a KindHello message.
func EncodeHello(h Hello) []byte {
	var ext []byte
	if h.Fleet.PeerID != 0 && len(h.Fleet.Incarnation) <= maxIncarnation {
		ext = append(ext, 0, helloExtFleet)
		ext = binary.BigEndian.AppendUint16(ext, h.Fleet.PeerID)
		ext = append(ext, byte(len(h.Fleet.Incarnation)))
		ext = append(ext, h.Fleet.Incarnation...)
	}
	// The version text and the extension together stay within
	// maxVersion, which every binary's decoder enforces.
	v := h.Version
	if i := strings.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	if len(v)+len(ext) > maxVersion {
		v = v[:maxVersion-len(ext)]
	}
	b := make([]byte, 0, 18+len(v)+len(ext))
	b = append(b, helloMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, h.Protocol)
	b = binary.BigEndian.AppendUint32(b, h.ClientFormat)
	b = binary.BigEndian.AppendUint32(b, uint32(h.PID))
	b = append(b, v...)
	return append(b, ext...)
}

// DecodeHello reads a KindHello payload.
func DecodeHello(b []byte) (Hello, error) {
	if len(b) < 18 || [8]byte(b[:8]) != helloMagic {
		return Hello{}, fmt.Errorf("%w: not a sluice hand-off hello", ErrFrame)
	}
	if len(b)-18 > maxVersion {
		return Hello{}, fmt.Errorf("%w: hello version text of %d bytes", ErrFrame, len(b)-18)
	}
	h := Hello{
		Protocol:     binary.BigEndian.Uint16(b[8:10]),
		ClientFormat: binary.BigEndian.Uint32(b[10:14]),
		PID:          int(binary.BigEndian.Uint32(b[14:18])),
	}
	tail := b[18:]
	i := bytes.IndexByte(tail, 0)
	if i < 0 {
		h.Version = string(tail)
		return h, nil
	}
	h.Version = string(tail[:i])
	ext := tail[i+1:]
	if len(ext) == 0 || ext[0] != helloExtFleet {
		return h, nil // a later format: not this binary's to read
	}
	if len(ext) < 4 || int(ext[3]) != len(ext)-4 || int(ext[3]) > maxIncarnation {
		return Hello{}, fmt.Errorf("%w: hello fleet extension of %d bytes", ErrFrame, len(ext))
	}
	h.Fleet = FleetSeat{PeerID: binary.BigEndian.Uint16(ext[1:3]), Incarnation: string(ext[4:])}
	if h.Fleet.PeerID == 0 {
		return Hello{}, fmt.Errorf("%w: hello fleet extension with peer number 0", ErrFrame)
	}
	return h, nil
}

// EncodeListener is the payload of a KindListener message: the
// listener's role (which setting it serves: "listen.address", ...) and
// the address as configured, which the new process compares with its own
// configuration before taking the socket.
func EncodeListener(role, address string) []byte {
	b := make([]byte, 0, 1+len(role)+len(address))
	b = append(b, byte(len(role)))
	b = append(b, role...)
	return append(b, address...)
}

// DecodeListener reads a KindListener payload.
func DecodeListener(b []byte) (role, address string, err error) {
	if len(b) < 1 || int(b[0]) > len(b)-1 || b[0] == 0 || int(b[0]) > maxRole {
		return "", "", fmt.Errorf("%w: listener role", ErrFrame)
	}
	n := int(b[0])
	if len(b)-1-n > maxAddress {
		return "", "", fmt.Errorf("%w: listener address of %d bytes", ErrFrame, len(b)-1-n)
	}
	return string(b[1 : 1+n]), string(b[1+n:]), nil
}

// EncodeAdopted is the payload of a KindAdopted message: empty when the
// new process adopted the client, else why not (the old process then
// still owns it).
func EncodeAdopted(err error) []byte {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if msg == "" {
		msg = "refused"
	}
	return AbortText(msg)
}

// DecodeAdopted reads a KindAdopted payload: nil when adopted.
func DecodeAdopted(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxAbortText {
		return fmt.Errorf("%w: adopted reason of %d bytes", ErrFrame, len(b))
	}
	return fmt.Errorf("the new process did not adopt the client: %s", b)
}

// AbortText bounds the reason an Abort message carries.
func AbortText(reason string) []byte {
	if len(reason) > maxAbortText {
		reason = reason[:maxAbortText]
	}
	return []byte(reason)
}

// DoneTakesCancels is the flag of the old process's first Done (after the
// listeners) saying it reads Cancel messages from Ready on until it
// closes the socket. A binary that predates it sends an empty Done and
// ignores a Done's payload, and its parser refuses the Cancel kind: the
// flag is what makes the new process send one.
const DoneTakesCancels = 1

// EncodeDone is the payload of a Done with flags.
func EncodeDone(flags byte) []byte { return []byte{flags} }

// DoneFlags reads a Done payload: 0 for an empty one (an older binary).
// Bits this binary does not know are ignored.
func DoneFlags(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// cancelLen is a Cancel payload's length: the process ID and secret key
// of a CancelRequest, as the client sent them.
const cancelLen = 8

// EncodeCancel is the payload of a KindCancel message.
func EncodeCancel(pid uint32, secret [4]byte) []byte {
	b := make([]byte, cancelLen)
	binary.BigEndian.PutUint32(b, pid)
	copy(b[4:], secret[:])
	return b
}

// DecodeCancel reads a KindCancel payload.
func DecodeCancel(b []byte) (pid uint32, secret [4]byte, err error) {
	if len(b) != cancelLen {
		return 0, secret, fmt.Errorf("%w: cancel of %d bytes", ErrFrame, len(b))
	}
	return binary.BigEndian.Uint32(b), [4]byte(b[4:]), nil
}
