package txcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"unsafe"
)

// The extended-protocol messages transaction pooling rewrites. Each
// function takes a whole message (type byte, length, body) as relayed and
// returns slices of it; nothing is copied or decoded beyond the names.

// ErrMalformed is a client message whose names do not parse.
var ErrMalformed = errors.New("malformed message")

// ErrTerminated ends the client's loop: the client sent Terminate.
var ErrTerminated = errors.New("client sent Terminate")

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (s, rest []byte, err error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, ErrMalformed
	}
	return b[:i], b[i+1:], nil
}

// parseMsg is a Parse: statement name, query text, and the parameter
// type section (int16 count and the OIDs) kept as raw bytes.
type parseMsg struct{ name, query, params []byte }

func splitParse(msg []byte) (p parseMsg, err error) {
	body := msg[5:]
	if p.name, body, err = cstring(body); err != nil {
		return p, err
	}
	if p.query, body, err = cstring(body); err != nil {
		return p, err
	}
	if len(body) < 2 || len(body) != 2+4*int(binary.BigEndian.Uint16(body)) {
		return p, ErrMalformed
	}
	p.params = body
	return p, nil
}

// splitBind returns a Bind's portal and statement names and the rest
// (formats, values, result formats) unparsed.
func splitBind(msg []byte) (portal, stmt, rest []byte, err error) {
	body := msg[5:]
	if portal, body, err = cstring(body); err != nil {
		return
	}
	stmt, rest, err = cstring(body)
	return
}

// splitTarget returns the kind ('S' statement or 'P' portal) and name of
// a Describe or Close.
func splitTarget(msg []byte) (kind byte, name []byte, err error) {
	body := msg[5:]
	if len(body) < 2 || (body[0] != 'S' && body[0] != 'P') {
		return 0, nil, ErrMalformed
	}
	name, rest, err := cstring(body[1:])
	if err == nil && len(rest) != 0 {
		err = ErrMalformed
	}
	return body[0], name, err
}

// header appends a message header for a body of n bytes.
func header(dst []byte, typ byte, n int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, typ), uint32(n+4))
}

func appendParse(dst []byte, name string, query, params []byte) []byte {
	dst = header(dst, 'P', len(name)+1+len(query)+1+len(params))
	dst = append(append(dst, name...), 0)
	dst = append(append(dst, query...), 0)
	return append(dst, params...)
}

func appendBind(dst []byte, portal []byte, stmt string, rest []byte) []byte {
	return append(appendBindHead(dst, portal, stmt, uint32(len(rest))), rest...)
}

// appendBindHead appends a Bind's header and names; restLen bytes of
// formats, values and result formats must follow.
func appendBindHead(dst []byte, portal []byte, stmt string, restLen uint32) []byte {
	dst = header(dst, 'B', len(portal)+1+len(stmt)+1+int(restLen))
	dst = append(append(dst, portal...), 0)
	return append(append(dst, stmt...), 0)
}

// appendTarget appends a Describe ('D') or Close ('C') of a statement or
// portal.
func appendTarget(dst []byte, typ, kind byte, name string) []byte {
	dst = header(dst, typ, 1+len(name)+1)
	dst = append(append(dst, kind), name...)
	return append(dst, 0)
}

// text views a query's bytes as a string for sqlscan, which keeps no
// reference to it.
func text(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
