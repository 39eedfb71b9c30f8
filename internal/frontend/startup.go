// Package frontend handles the client side of a session before the relay
// starts: the startup packet (SSL/GSS negotiation, cancel requests,
// protocol version negotiation) and the message I/O used to authenticate
// the client. It owns no goroutines; the session goroutine calls it.
package frontend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-proxy/sluice/internal/peercancel"
)

// Request codes and protocol versions of the startup packet.
const (
	CodeCancel     uint32 = 80877102
	CodeSSL        uint32 = 80877103
	CodeGSSEnc     uint32 = 80877104
	Protocol30     uint32 = 3 << 16
	protocolMajor3 uint32 = 3
)

// Kind says what a startup packet asks for.
type Kind int

const (
	KindStartup Kind = iota + 1
	KindSSL
	KindGSSEnc
	KindCancel
	// KindPeerCancel is a cancel another sluice of the fleet forwarded
	// (peercancel.Code); its Peer is checked by the proxy.
	KindPeerCancel
)

// Startup is one parsed startup packet.
type Startup struct {
	Kind Kind
	// Protocol is the version the client asked for (KindStartup).
	Protocol uint32
	// Params holds the startup parameters in the order sent (KindStartup).
	Params []Param
	// PID and Secret identify the session to cancel (KindCancel). A secret
	// longer than 4 bytes (protocol 3.2) is kept whole.
	PID    uint32
	Secret []byte
	// Peer is a forwarded cancel's whole body, from its code on
	// (KindPeerCancel), for peercancel.Open.
	Peer []byte
}

// Param is one startup parameter.
type Param struct{ Name, Value string }

// Get returns the value of a startup parameter, or "".
func (s *Startup) Get(name string) string {
	for _, p := range s.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ProtocolError is a startup packet that breaks the protocol. Code is the
// SQLSTATE to answer with, when an answer is possible.
type ProtocolError struct {
	Code string
	Msg  string
}

func (e *ProtocolError) Error() string { return e.Msg }

// UnsupportedProtocol is the error for a startup packet asking for
// protocol version code (also a forwarded cancel sent to a sluice that is
// not in a fleet, which knows no such request).
func UnsupportedProtocol(code uint32) error {
	return &ProtocolError{Code: "0A000", Msg: fmt.Sprintf("unsupported frontend protocol %d.%d: sluice supports 3.0 to 3.2", code>>16, code&0xffff)}
}

func protoErr(format string, args ...any) error {
	return &ProtocolError{Code: "08P01", Msg: fmt.Sprintf(format, args...)}
}

// ReadStartup reads one startup packet of at most maxLen bytes from r.
func ReadStartup(r io.Reader, maxLen int) (*Startup, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || int64(n) > int64(maxLen) {
		return nil, protoErr("invalid length of startup packet: %d bytes (limit %d)", n, maxLen)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return ParseStartup(buf)
}

// ParseStartup parses a startup packet body (everything after the length).
func ParseStartup(body []byte) (*Startup, error) {
	if len(body) < 4 {
		return nil, protoErr("startup packet too short")
	}
	code := binary.BigEndian.Uint32(body)
	rest := body[4:]
	switch code {
	case CodeSSL, CodeGSSEnc:
		if len(rest) != 0 {
			return nil, protoErr("invalid length of SSL/GSS request")
		}
		if code == CodeSSL {
			return &Startup{Kind: KindSSL}, nil
		}
		return &Startup{Kind: KindGSSEnc}, nil
	case CodeCancel:
		if len(rest) < 8 || len(rest) > 4+256 {
			return nil, protoErr("invalid length of cancel request")
		}
		return &Startup{Kind: KindCancel, PID: binary.BigEndian.Uint32(rest), Secret: append([]byte(nil), rest[4:]...)}, nil
	case peercancel.Code:
		return &Startup{Kind: KindPeerCancel, Peer: append([]byte(nil), body...)}, nil
	}
	if code>>16 != protocolMajor3 {
		return nil, UnsupportedProtocol(code)
	}
	params, err := parseParams(rest)
	if err != nil {
		return nil, err
	}
	s := &Startup{Kind: KindStartup, Protocol: code, Params: params}
	if s.Get("user") == "" {
		return nil, &ProtocolError{Code: "28000", Msg: "no PostgreSQL user name specified in startup packet"}
	}
	return s, nil
}

func parseParams(b []byte) ([]Param, error) {
	var params []Param
	for {
		if len(b) == 0 {
			return nil, protoErr("invalid startup packet layout: expected terminator as last byte")
		}
		if b[0] == 0 {
			if len(b) != 1 {
				return nil, protoErr("invalid startup packet layout: bytes after terminator")
			}
			return params, nil
		}
		name, rest, ok := cstring(b)
		if !ok {
			return nil, protoErr("invalid startup packet layout: unterminated parameter name")
		}
		value, rest, ok := cstring(rest)
		if !ok {
			return nil, protoErr("invalid startup packet layout: missing value for parameter %q", name)
		}
		params = append(params, Param{Name: name, Value: value})
		b = rest
	}
}

func cstring(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// Negotiation returns what a NegotiateProtocolVersion must carry for s, if
// one is needed: a minor version above 0 is negotiated down to 3.0, and
// protocol options (names starting "_pq_.") are reported unrecognised.
func (s *Startup) Negotiation() (needed bool, unrecognized []string) {
	for _, p := range s.Params {
		if strings.HasPrefix(p.Name, "_pq_.") {
			unrecognized = append(unrecognized, p.Name)
		}
	}
	return s.Protocol&0xffff != 0 || len(unrecognized) > 0, unrecognized
}
