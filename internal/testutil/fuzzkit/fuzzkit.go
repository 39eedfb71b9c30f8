// Package fuzzkit holds what the model-based fuzz targets of wire's
// framer and proxy's transaction pooling share: encoding a message
// independently of the code under test, cutting a stream into reads, and
// reading a fuzz input as a stream of choices. It imports nothing of
// sluice's, so any package's tests can use it.
package fuzzkit

import (
	"encoding/binary"
	"runtime/debug"
	"testing"
)

// FailOnPanic turns a panic into a failure of this input alone, so that a
// regression input kept in testdata does not take the package's other
// tests down with it. Defer it directly (recover works only there):
// defer fuzzkit.FailOnPanic(t).
func FailOnPanic(t *testing.T) {
	if r := recover(); r != nil {
		t.Fatalf("panic: %v\n%s", r, debug.Stack())
	}
}

// Frame encodes one message of type typ.
func Frame(typ byte, body []byte) []byte {
	m := binary.BigEndian.AppendUint32([]byte{typ}, uint32(len(body)+4))
	return append(m, body...)
}

// Chunks cuts b into pieces whose sizes come from splits, cycling
// through it: a byte below 128 gives 1 to 8 bytes (cuts inside headers),
// from 128 on 1 to 255 in steps of 2. An empty splits gives one piece.
func Chunks(b, splits []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	if len(splits) == 0 {
		return [][]byte{b}
	}
	var out [][]byte
	for i := 0; len(b) > 0; i++ {
		s := splits[i%len(splits)]
		n := int(s%8) + 1
		if s >= 128 {
			n = int(s-128)*2 + 1
		}
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// Input reads a fuzz input as a stream of choices; once it runs dry it
// yields zeros (choices) and a fixed pattern (bodies).
type Input struct{ B []byte }

// Empty reports whether the input is used up.
func (r *Input) Empty() bool { return len(r.B) == 0 }

// Byte is the next choice.
func (r *Input) Byte() byte {
	if len(r.B) == 0 {
		return 0
	}
	c := r.B[0]
	r.B = r.B[1:]
	return c
}

// Bytes is the next n bytes of body.
func (r *Input) Bytes(n int) []byte {
	out := make([]byte, n)
	k := copy(out, r.B)
	r.B = r.B[k:]
	for i := k; i < n; i++ {
		out[i] = byte(i)
	}
	return out
}
