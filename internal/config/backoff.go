package config

import (
	"math"
	"time"
)

// Caps applied to connection retries unless disable_backoff_caps is set
// (the same caps GatewayD uses).
const (
	MaxRetriesCap    = 10
	MaxBackoffCap    = 60 * time.Second
	MaxMultiplierCap = 10.0
)

// EffectiveRetries is how many retries follow a failed first attempt to reach
// the server: Retries, capped at MaxRetriesCap unless DisableBackoffCaps.
func (b Backend) EffectiveRetries() int {
	r := max(b.Retries, 0)
	if !b.DisableBackoffCaps {
		r = min(r, MaxRetriesCap)
	}
	return r
}

// Wait is how long to wait before retry k (k = 1..EffectiveRetries()); the
// first attempt is immediate. Wait(k) = backoff × multiplier^(k−1), so the
// defaults give 1s, 2s, 4s. A multiplier of 0 means every wait is backoff; a
// backoff of 0 means no waiting. Unless DisableBackoffCaps, the multiplier
// is capped at MaxMultiplierCap and each wait at MaxBackoffCap. Uncapped
// waits saturate at the largest time.Duration instead of overflowing.
// Wait does not check k against EffectiveRetries; k < 1 gives 0.
func (b Backend) Wait(k int) time.Duration {
	if k < 1 || b.Backoff <= 0 {
		return 0
	}
	base := float64(b.Backoff)
	mult := b.BackoffMultiplier
	if mult <= 0 || math.IsNaN(mult) {
		mult = 1
	}
	if !b.DisableBackoffCaps {
		mult = min(mult, MaxMultiplierCap)
	}
	w := base * math.Pow(mult, float64(k-1))
	if !b.DisableBackoffCaps {
		w = min(w, float64(MaxBackoffCap))
	}
	if w >= math.MaxInt64 || math.IsInf(w, 0) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(w)
}
