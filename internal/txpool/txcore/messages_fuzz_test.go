package txcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sluice-proxy/sluice/internal/wire"

	"github.com/sluice-proxy/sluice/internal/testutil/fuzzkit"
)

// Fuzz targets for transaction pooling's parsers: the Parse/Bind/
// Describe/Close name splitters and the server-side filter (the
// client-side framer's, FuzzFramer, is in internal/wire). They work on
// byte slices and Books alone: no connection, no server.

// --- splitParse, splitBind, splitTarget ---------------------------------

// FuzzSplitMessages checks the name splitters on arbitrary bodies: they
// never panic or write to the message; they accept exactly the bodies
// the protocol allows (checked by an independent reading); an accepted
// message re-encodes byte for byte with the append functions; and with
// another name (no NUL) the re-encoded message splits back to that name
// and the same rest. The append functions leave dst's contents alone.
//
// kind%4: 0 Parse, 1 Bind, 2 Describe, 3 Close.
func FuzzSplitMessages(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind uint8, body []byte, name string) {
		defer fuzzkit.FailOnPanic(t)
		typ := "PBDC"[kind%4]
		msg := fuzzkit.Frame(typ, body)
		orig := bytes.Clone(msg)
		prefix := []byte("pre")
		renamed := bytes.IndexByte([]byte(name), 0) < 0
		var err error
		var again []byte
		switch typ {
		case 'P':
			var p parseMsg
			p, err = splitParse(msg)
			parts := bytes.SplitN(body, []byte{0}, 3)
			valid := len(parts) == 3 && len(parts[2]) >= 2 && len(parts[2]) == 2+4*int(binary.BigEndian.Uint16(parts[2]))
			if valid != (err == nil) {
				t.Fatalf("splitParse(%q): err %v, valid %v", body, err, valid)
			}
			if err != nil {
				break
			}
			again = appendParse(bytes.Clone(prefix), string(p.name), p.query, p.params)
			if renamed {
				m2 := appendParse(nil, name, p.query, p.params)
				p2, err := splitParse(m2)
				if err != nil || string(p2.name) != name || !bytes.Equal(p2.query, p.query) || !bytes.Equal(p2.params, p.params) {
					t.Fatalf("renamed Parse %q splits to %q %q %q, %v", m2, p2.name, p2.query, p2.params, err)
				}
				checkLength(t, m2)
			}
		case 'B':
			var portal, stmt, rest []byte
			portal, stmt, rest, err = splitBind(msg)
			valid := bytes.Count(body, []byte{0}) >= 2
			if valid != (err == nil) {
				t.Fatalf("splitBind(%q): err %v, valid %v", body, err, valid)
			}
			if err != nil {
				break
			}
			again = appendBind(bytes.Clone(prefix), portal, string(stmt), rest)
			if renamed {
				m2 := appendBind(nil, portal, name, rest)
				po2, st2, re2, err := splitBind(m2)
				if err != nil || string(st2) != name || !bytes.Equal(po2, portal) || !bytes.Equal(re2, rest) {
					t.Fatalf("renamed Bind %q splits to %q %q %q, %v", m2, po2, st2, re2, err)
				}
				checkLength(t, m2)
			}
		default:
			var k byte
			var n []byte
			k, n, err = splitTarget(msg)
			valid := len(body) >= 2 && (body[0] == 'S' || body[0] == 'P') && bytes.IndexByte(body[1:], 0) == len(body)-2
			if valid != (err == nil) {
				t.Fatalf("splitTarget(%q): err %v, valid %v", body, err, valid)
			}
			if err != nil {
				break
			}
			if k != body[0] {
				t.Fatalf("splitTarget(%q): kind %q", body, k)
			}
			again = appendTarget(bytes.Clone(prefix), typ, k, string(n))
			if renamed {
				m2 := appendTarget(nil, typ, k, name)
				k2, n2, err := splitTarget(m2)
				if err != nil || k2 != k || string(n2) != name {
					t.Fatalf("renamed %q splits to %q %q, %v", m2, k2, n2, err)
				}
				checkLength(t, m2)
			}
		}
		if !bytes.Equal(msg, orig) {
			t.Fatalf("splitting wrote to the message")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			return
		}
		if !bytes.HasPrefix(again, prefix) || !bytes.Equal(again[len(prefix):], orig) {
			t.Fatalf("re-encoded %q as %q", orig, again)
		}
	})
}

func checkLength(t *testing.T, m []byte) {
	t.Helper()
	if len(m) < wire.HeaderLen || int(binary.BigEndian.Uint32(m[1:])) != len(m)-1 {
		t.Fatalf("message %q: length field does not match", m)
	}
}
