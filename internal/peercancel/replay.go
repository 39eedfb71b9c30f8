package peercancel

import "sync"

// WindowMilli bounds the clock skew between instances and the life of a
// forwarded cancel: a receiver takes one sealed at most 30 s before or
// after its own clock (instances keep time with NTP; a forward is sent
// within the 2 s its dial and write may take).
const WindowMilli = 30_000

// ReplayCapacity is how many nonces Replays remembers at most.
const ReplayCapacity = 16384

// Fresh reports whether a forward sealed at sealedMilli is within the
// window of nowMilli.
func Fresh(sealedMilli, nowMilli int64) bool {
	d := nowMilli - sealedMilli
	return d <= WindowMilli && d >= -WindowMilli
}

// Replays remembers the nonces of the fresh forwards an instance took, so
// that a forward captured on the network between two instances cannot be
// played again while it is fresh. Its memory is fixed: at most
// ReplayCapacity nonces (about 1 MB with the map). A nonce is forgotten
// once its forward is stale (Fresh refuses it from then on), or, when
// more than ReplayCapacity forwards arrive within the window (only a
// flood does that), the oldest first: replay protection then shrinks to
// the last ReplayCapacity forwards rather than refusing genuine cancels.
// The zero value is ready; it is safe for concurrent use.
type Replays struct {
	mu   sync.Mutex
	seen map[[16]byte]int64 // nonce → when its forward was sealed
	ring [][16]byte         // nonces in arrival order, oldest at head
	head int
	n    int
}

// Check records f's nonce and reports whether it is new. Call it for a
// forward that Open and Fresh accepted.
func (r *Replays) Check(f Forward, nowMilli int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[[16]byte]int64)
		r.ring = make([][16]byte, ReplayCapacity)
	}
	for r.n > 0 && (r.n == len(r.ring) || r.seen[r.ring[r.head]] < nowMilli-WindowMilli) {
		delete(r.seen, r.ring[r.head])
		r.head = (r.head + 1) % len(r.ring)
		r.n--
	}
	if _, dup := r.seen[f.Nonce]; dup {
		return false
	}
	r.seen[f.Nonce] = f.UnixMilli
	r.ring[(r.head+r.n)%len(r.ring)] = f.Nonce
	r.n++
	return true
}

// Len is how many nonces r remembers now.
func (r *Replays) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
