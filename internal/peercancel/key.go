// Package peercancel is the pure core of cancelling anywhere in a fleet of
// sluice instances: the layout of the cancel keys an instance issues (which
// carry the instance's peer number) and the forwarded-cancel message one
// instance sends another, sealed with HMAC-SHA256 under the fleet's
// shared secret. It does no I/O (no net, no os) and starts no goroutines:
// proxy owns the sockets, the clock and the forwarding goroutines.
package peercancel

// A cancel key is PostgreSQL's BackendKeyData: a 32-bit process ID and,
// in protocol 3.0 (the only version sluice speaks to clients), a 32-bit
// secret. In a fleet the process ID is the instance's own:
//
//	bit 31      0 (a process ID stays a positive int4, as pg_backend_pid's)
//	bits 30..17 the issuing instance's peer number, 1..16383
//	bits 16..0  a serial number (it wraps after 131072 logins)
//
// and the secret keeps all of its 32 random bits. Nothing of the process
// ID is secret (a client sees its own, and numbers are sequential), so an
// outsider who wants to cancel a given session must guess the 32-bit
// secret, as with PostgreSQL itself, or with sluice alone, whose
// session-mode key carries the server's PID (visible in pg_stat_activity).
const (
	// PeerBits is how many bits of the process ID name the peer.
	PeerBits = 14
	// MaxPeer is the highest peer number.
	MaxPeer = 1<<PeerBits - 1
	// SerialBits is how many low bits of the process ID count logins.
	SerialBits = 17
	serialMask = 1<<SerialBits - 1
)

// PID is the process ID that peer issues as its serial-th key. peer must
// be 1..MaxPeer; higher bits of either argument are dropped.
func PID(peer uint16, serial uint32) uint32 {
	return uint32(peer&MaxPeer)<<SerialBits | serial&serialMask
}

// PeerOf returns the peer number a process ID carries, and false when it
// cannot be a fleet key (bit 31 set, or peer 0: keys sluice never issues
// in a fleet).
func PeerOf(pid uint32) (uint16, bool) {
	if pid>>31 != 0 {
		return 0, false
	}
	peer := uint16(pid >> SerialBits & MaxPeer)
	return peer, peer != 0
}
