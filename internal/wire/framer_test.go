package wire

import (
	"bytes"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testutil/fuzzkit"
)

// countingSink counts what the framer hands on, keeping nothing.
type countingSink struct{ msgs, parts int }

func (s *countingSink) Message([]byte) error                        { s.msgs++; return nil }
func (s *countingSink) StreamStart([]byte, bool) error              { s.parts++; return nil }
func (s *countingSink) BindHead([]byte, []byte, uint32, bool) error { s.parts++; return nil }
func (s *countingSink) StreamBytes([]byte, bool) error              { s.parts++; return nil }

// TestFramerIsAllocationFree: framing whole messages, and streaming a
// Query larger than what is held, allocates nothing: the per-message
// path of a rewriting proxy (transaction pooling) adds no garbage. (A Bind over 1 MiB
// allocates its head once; a message cut by a read and held, as before.)
func TestFramerIsAllocationFree(t *testing.T) {
	batch := append(fuzzkit.Frame('B', append([]byte{0, 's', '1', 0}, 0, 0, 0, 1, 0, 0, 0, 1, '7', 0, 0)),
		append(fuzzkit.Frame('E', []byte{0, 0, 0, 0, 0}), fuzzkit.Frame('S', nil)...)...)
	bigQuery := fuzzkit.Frame('Q', append(bytes.Repeat([]byte("x"), 300), 0))
	var f Framer
	f.MaxHeld = 64
	sink := &countingSink{}
	feed := func(b []byte) {
		for len(b) > 0 {
			n := min(len(b), 100)
			if err := f.Feed(b[:n], sink); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
	}
	n := testing.AllocsPerRun(100, func() {
		if err := f.Feed(batch, sink); err != nil {
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
