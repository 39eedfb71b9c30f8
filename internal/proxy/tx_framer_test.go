package proxy

import (
	"bytes"
	"testing"
)

// countingSink counts what the framer hands on, keeping nothing.
type countingSink struct{ msgs, parts int }

func (s *countingSink) message([]byte) error                        { s.msgs++; return nil }
func (s *countingSink) streamStart([]byte, bool) error              { s.parts++; return nil }
func (s *countingSink) bindHead([]byte, []byte, uint32, bool) error { s.parts++; return nil }
func (s *countingSink) streamBytes([]byte, bool) error              { s.parts++; return nil }

// TestUpFramerIsAllocationFree: framing whole messages, and streaming a
// Query larger than what is held, allocates nothing: the per-message
// path of transaction pooling adds no garbage. (A Bind over 1 MiB
// allocates its head once; a message cut by a read and held, as before.)
func TestUpFramerIsAllocationFree(t *testing.T) {
	batch := append(fuzzFrame('B', append([]byte{0, 's', '1', 0}, 0, 0, 0, 1, 0, 0, 0, 1, '7', 0, 0)),
		append(fuzzFrame('E', []byte{0, 0, 0, 0, 0}), fuzzFrame('S', nil)...)...)
	bigQuery := fuzzFrame('Q', append(bytes.Repeat([]byte("x"), 300), 0))
	var f upFramer
	f.maxHeld = 64
	sink := &countingSink{}
	feed := func(b []byte) {
		for len(b) > 0 {
			n := min(len(b), 100)
			if err := f.feed(b[:n], sink); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
	}
	n := testing.AllocsPerRun(100, func() {
		if err := f.feed(batch, sink); err != nil {
			t.Fatal(err)
		}
		feed(bigQuery)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	if f.hdrLen != 0 || f.held != nil {
		t.Fatalf("framer not at a boundary: %+v", f)
	}
}
