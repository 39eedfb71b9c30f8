package proxy

import "time"

// watch arms the receive deadline and the silence timer while the server
// owes an answer, and clears them when it owes none; the client idle
// deadline the other way round. Both loops call it after their counters
// change; the lock makes the last caller's view of the counters win.
func (r *relay) watch() {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.stopping.Load() || r.handOffStop.Load() {
		return // run, or a hand-off's kick, has set deadlines to stop the loops: keep them
	}
	owed := r.owed()
	if r.limits.clientIdle > 0 {
		if owed {
			r.client.SetReadDeadline(time.Time{})
		} else {
			r.client.SetReadDeadline(time.Now().Add(r.limits.clientIdle))
		}
	}
	if r.limits.receiveDeadline > 0 {
		if owed {
			r.server.SetReadDeadline(time.Now().Add(r.limits.receiveDeadline))
		} else {
			r.server.SetReadDeadline(time.Time{})
		}
	}
	if r.limits.receiveTimeout > 0 {
		if r.silence == nil {
			r.silence = time.AfterFunc(time.Hour, r.onSilence)
		}
		if owed {
			r.silence.Reset(r.limits.receiveTimeout)
		} else {
			r.silence.Stop()
		}
	}
}

// owed reports whether the client asked something after the last
// ReadyForQuery (see askSeq).
func (r *relay) owed() bool { return r.askSeq.Load() > r.zSeenAt.Load() }

// onSilence runs when the server sent nothing for receive_timeout while a
// query was running: the query is cancelled on the server, whose 57014
// error is rewritten to name receive_timeout, and the session goes on.
func (r *relay) onSilence() {
	if r.stopping.Load() || !r.owed() {
		return
	}
	r.timedOut.Store(true)
	if !r.owed() {
		// The answer came while we were deciding: a cancel now could hit
		// the client's next query instead.
		r.timedOut.Store(false)
		return
	}
	r.log.Warn("server sent nothing within receive_timeout; cancelling the query",
		"receive_timeout", r.limits.receiveTimeout, "server", r.server.RemoteAddr().String())
	if r.limits.cancel != nil {
		r.limits.cancel()
	}
}
