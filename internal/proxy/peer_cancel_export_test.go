package proxy

import "time"

// SetForwardTimeout makes forwarded cancels wait up to d for their peer
// (defaultForwardTimeout otherwise); the returned func restores it.
func SetForwardTimeout(d time.Duration) (restore func()) {
	forwardTimeout.Store(int64(d))
	return func() { forwardTimeout.Store(int64(defaultForwardTimeout)) }
}

// MaxForwardsInFlight is maxForwardsInFlight.
const MaxForwardsInFlight = maxForwardsInFlight
