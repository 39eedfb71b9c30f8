package config

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func waits(b Backend) []time.Duration {
	var out []time.Duration
	for k := 1; k <= b.EffectiveRetries(); k++ {
		out = append(out, b.Wait(k))
	}
	return out
}

func TestBackoffTable(t *testing.T) {
	s := time.Second
	def := defaultDatabase("x").Backend
	cases := []struct {
		name string
		b    Backend
		want []time.Duration
	}{
		{"defaults", def, []time.Duration{1 * s, 2 * s, 4 * s}},
		{"retries 11 capped", Backend{Retries: 11, Backoff: Duration(s), BackoffMultiplier: 2},
			[]time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s, 60 * s, 60 * s}},
		{"retries 11 uncapped", Backend{Retries: 11, Backoff: Duration(s), BackoffMultiplier: 2, DisableBackoffCaps: true},
			[]time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 64 * s, 128 * s, 256 * s, 512 * s, 1024 * s}},
		{"retries 0", Backend{Retries: 0, Backoff: Duration(s), BackoffMultiplier: 2}, nil},
		{"multiplier 0 keeps backoff", Backend{Retries: 4, Backoff: Duration(3 * s)},
			[]time.Duration{3 * s, 3 * s, 3 * s, 3 * s}},
		{"backoff 0 never waits", Backend{Retries: 3, BackoffMultiplier: 2},
			[]time.Duration{0, 0, 0}},
		{"multiplier capped at 10", Backend{Retries: 3, Backoff: Duration(100 * time.Millisecond), BackoffMultiplier: 50},
			[]time.Duration{100 * time.Millisecond, 1 * s, 10 * s}},
		{"multiplier uncapped", Backend{Retries: 3, Backoff: Duration(100 * time.Millisecond), BackoffMultiplier: 50, DisableBackoffCaps: true},
			[]time.Duration{100 * time.Millisecond, 5 * s, 250 * s}},
		{"backoff above cap", Backend{Retries: 2, Backoff: Duration(90 * s), BackoffMultiplier: 1},
			[]time.Duration{60 * s, 60 * s}},
		{"fractional multiplier", Backend{Retries: 3, Backoff: Duration(8 * s), BackoffMultiplier: 0.5},
			[]time.Duration{8 * s, 4 * s, 2 * s}},
		{"negative retries", Backend{Retries: -3, Backoff: Duration(s)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, waits(tc.b))
		})
	}
}

func TestBackoffEdges(t *testing.T) {
	b := Backend{Retries: 100, Backoff: Duration(time.Second), BackoffMultiplier: 10, DisableBackoffCaps: true}
	require.Equal(t, 100, b.EffectiveRetries())
	require.Equal(t, time.Duration(math.MaxInt64), b.Wait(100), "saturates instead of overflowing")
	require.Equal(t, time.Duration(0), b.Wait(0))
	require.Equal(t, time.Duration(0), b.Wait(-1))
	b.BackoffMultiplier = math.Inf(1)
	require.Equal(t, time.Duration(math.MaxInt64), b.Wait(2))
	b.BackoffMultiplier = math.NaN()
	require.Equal(t, time.Second, b.Wait(5))
}
