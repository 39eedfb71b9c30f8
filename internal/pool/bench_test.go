package pool

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAcquireRelease measures the per-session hot path: an idle
// connection is available, so Acquire pops it and Release pushes it back.
// Run with -benchmem: the idle path must not allocate.
func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	newPool := func(b *testing.B, size int) *Pool[*fakeConn] {
		d := &fakeDialer{}
		p := newTestPool(Config{MinSize: size, MaxSize: size, BorrowTimeout: time.Minute}, d)
		if err := p.EnsureMin(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return p
	}

	b.Run("single", func(b *testing.B) {
		p := newPool(b, 8)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(c)
		}
	})

	b.Run("parallel", func(b *testing.B) {
		p := newPool(b, 64)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := p.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Release(c)
			}
		})
	})

	// Contended: more goroutines than connections, so most acquisitions
	// wait and are served by direct hand-off.
	b.Run("contended", func(b *testing.B) {
		p := newPool(b, 2)
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := p.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Release(c)
			}
		})
	})
}
