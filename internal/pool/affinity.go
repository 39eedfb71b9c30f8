package pool

// Settings affinity (the idea of Vitess smartconnpool's per-setting
// stacks): a server connection is opened with a client's startup
// parameters in its own startup packet, so PostgreSQL records them as the
// connection's defaults (source "client"; RESET returns to them). The
// pool keeps one idle stack for all connections, each entry tagged with
// the key of the parameter set it was opened with; an Acquire with an
// Affinity takes the most recently released connection with its key. A
// scan from the top finds it at once in the common case (every client of
// an application sends the same parameters); its cost is bounded by the
// idle count, under the lock, without allocating.

// Keyed is the optional interface through which the pool learns the
// settings key a connection was opened with (*backend.Conn implements
// it). Connections without it have key 0.
type Keyed interface{ SettingsKey() uint64 }

// keyOf returns c's settings key (0 when c is not Keyed).
func keyOf[C Conn](c C) uint64 {
	if k, ok := any(c).(Keyed); ok {
		return k.SettingsKey()
	}
	return 0
}

// Affinity says which connection an Acquire wants.
type Affinity struct {
	// Key is the settings key of the parameter set the caller needs; the
	// pool's dial is expected to open a connection with that set (the
	// caller arranges that, e.g. through the context).
	Key uint64
	// Exact: never hand out a connection opened with another key. When
	// the pool is full and no idle connection has Key, the coldest idle
	// one is closed and its slot dialled; a connection handed over by
	// another client's Release with another key is closed and replaced
	// the same way. Without Exact such a connection is handed out and the
	// caller must apply its settings itself.
	Exact bool
}

// matchIdleLocked returns the index in p.idle of the connection an
// Acquire with aff takes now, or -1 when it should rather dial (there is
// room, or aff is exact and nothing matches). With keyed false any
// connection does: the top one.
func (p *Pool[C]) matchIdleLocked(aff Affinity, keyed bool) int {
	top := len(p.idle) - 1
	if !keyed || top < 0 {
		return top
	}
	for i := top; i >= 0; i-- {
		if p.idle[i].key == aff.Key {
			return i
		}
	}
	if aff.Exact || p.openLocked() < p.cfg.MaxSize {
		return -1
	}
	return top
}

// takeIdleLocked removes p.idle[i], keeping the order of the others (so
// the stack stays ordered by release time for trimming and health).
func (p *Pool[C]) takeIdleLocked(i int) C {
	c := p.idle[i].conn
	n := copy(p.idle[i:], p.idle[i+1:])
	p.idle[i+n] = idleConn[C]{} // do not pin a connection we no longer own
	p.idle = p.idle[:i+n]
	return c
}
