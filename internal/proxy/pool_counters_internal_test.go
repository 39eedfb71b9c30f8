package proxy

import "testing"

// BenchmarkNotePinsUnpinned is what SHOW PINS adds to each detach of a
// client that is not pinned: one atomic load.
func BenchmarkNotePinsUnpinned(b *testing.B) {
	ss := &session{}
	b.ReportAllocs()
	for b.Loop() {
		ss.notePins(nil, "", 0)
	}
}

func TestNotePinsKeepsSinceAndSkipsUnchanged(t *testing.T) {
	ss := &session{}
	ss.notePins(nil, "", 0)
	if ss.pins.Load() != nil {
		t.Fatal("no pins, no record")
	}
	ss.notePins([]string{"temp_table"}, "CREATE TEMP TABLE t (a int)", 1)
	first := ss.pins.Load()
	ss.notePins([]string{"temp_table"}, "CREATE TEMP TABLE t (a int)", 1)
	if ss.pins.Load() != first {
		t.Fatal("unchanged reasons must not allocate a new record")
	}
	ss.notePins([]string{"temp_table", "listen"}, "LISTEN x", 1)
	if got := ss.pins.Load(); got == first || !got.since.Equal(first.since) {
		t.Fatal("a new reason keeps the time the client was first pinned")
	}
	ss.notePins(nil, "", 0)
	if ss.pins.Load() != nil {
		t.Fatal("unpinned")
	}
	if n := testing.AllocsPerRun(100, func() { ss.notePins(nil, "", 0) }); n != 0 {
		t.Fatalf("notePins(nil) on an unpinned client allocates %v", n)
	}
}
