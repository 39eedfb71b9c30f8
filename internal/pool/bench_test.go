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
	newPoolCfg := func(b *testing.B, cfg Config) *Pool[*fakeConn] {
		d := &fakeDialer{}
		p := newTestPool(cfg, d)
		if err := p.EnsureMin(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return p
	}
	newPool := func(b *testing.B, size int) *Pool[*fakeConn] {
		return newPoolCfg(b, Config{MinSize: size, MaxSize: size, BorrowTimeout: time.Minute})
	}

	// With settings affinity the idle path stays allocation-free: the
	// matching connection is on top of the stack.
	b.Run("affinity", func(b *testing.B) {
		p := newPool(b, 8)
		aff := Affinity{Key: 0, Exact: true}
		b.ReportAllocs()
		for b.Loop() {
			var d Deadline
			c, err := p.AcquireFor(ctx, &d, aff)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(c)
		}
	})

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

	// A pool under a database's gate (max_db_connections) that has
	// room: the idle path reads two of the gate's atomics on Release and
	// takes no lock of the gate.
	b.Run("gated", func(b *testing.B) {
		d := &fakeDialer{}
		p := newTestPool(Config{MinSize: 8, MaxSize: 8, BorrowTimeout: time.Minute}, d)
		p.JoinGate(NewGate(100))
		if err := p.EnsureMin(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(c)
		}
	})

	// With idle_timeout and max_lifetime set, Release also reads the clock
	// and the connection's CreatedAt; still no allocation.
	b.Run("single-timed", func(b *testing.B) {
		p := newPoolCfg(b, Config{MinSize: 8, MaxSize: 8, BorrowTimeout: time.Minute,
			IdleTimeout: time.Hour, MaxLifetime: time.Hour})
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
