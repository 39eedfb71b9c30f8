package cluster

import (
	"strconv"
	"strings"
)

// peerIDCandidates lists the peer numbers to try, in order: prefer
// (the number this instance held before, when it is not taken by
// another instance) first, then the free numbers from the lowest, at
// most limit of them. taken maps a claimed number to its holder (the
// key's value); a number whose holder is ours (own: this process, or
// the one it took over from at an upgrade) is free to take back (its
// old lease may outlive a partition, or the old process, and claiming
// it again moves it to the new lease).
func peerIDCandidates(taken map[uint16]string, own func(holder string) bool, prefer uint16, limit int) []uint16 {
	free := func(n uint16) bool {
		holder, ok := taken[n]
		return !ok || own(holder)
	}
	var out []uint16
	if prefer >= 1 && prefer <= MaxPeerID && free(prefer) {
		out = append(out, prefer)
	}
	for n := uint16(1); n <= MaxPeerID && len(out) < limit; n++ {
		if n != prefer && free(n) {
			out = append(out, n)
		}
	}
	return out
}

// parsePeerIDKey reads the number at the end of a <prefix>peer_ids/<n>
// key; ok is false for anything else (a stray key under the prefix is
// ignored, not trusted).
func parsePeerIDKey(key, dir string) (uint16, bool) {
	s, found := strings.CutPrefix(key, dir)
	if !found || s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPeerID {
		return 0, false
	}
	return uint16(n), true
}
