package proxy

import "time"

// Pausing a session-mode relay for the upgrade hand-off
// (docs/design/upgrade-handoff.md). A session moves with its server
// connection only between transactions: the server's last ReadyForQuery
// said 'I', every request was answered, and neither scanner holds part
// of a message. The hand-off asks (askHandOff); the relay is kicked at
// once if it looks idle, else by serverToClient at the next ReadyForQuery
// 'I' that leaves nothing owed (one atomic load per ReadyForQuery while
// no hand-off runs). A kick is a past read deadline on both sockets,
// under watchMu, which watch then leaves alone: both loops return with a
// timeout, and run's caller (the session goroutine) finds the relay
// paused. It then either hands the session over, if the pause found it
// idle, or resumes the relay (resume, then run again): bytes that
// arrived meanwhile wait in the sockets, nothing was read and dropped.

// askHandOff asks the relay to pause at its next idle point (the
// hand-off's goroutine).
func (r *relay) askHandOff() {
	r.handOffWanted.Store(true)
	if byte(r.txStatus.Load()) == 'I' && r.gotZ.Load() == r.expectZ.Load() {
		r.kick()
	}
}

// kick stops both loops for a pause, unless the relay is stopping anyway.
func (r *relay) kick() {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.stopping.Load() || r.handOffStop.Load() {
		return
	}
	r.handOffStop.Store(true)
	r.client.SetReadDeadline(time.Unix(1, 0))
	r.server.SetReadDeadline(time.Unix(1, 0))
}

// paused reports, after run returned, whether it returned for a kick
// alone (both loops ended on the kick's deadline).
func (r *relay) paused() bool {
	return r.handOffStop.Load() && isTimeout(r.upErr) && isTimeout(r.downErr) && !r.shutdown.Load()
}

// idleForHandOff reports, while paused, whether the session can move
// with its server connection now.
func (r *relay) idleForHandOff() bool {
	return !r.terminated && r.clean() && byte(r.txStatus.Load()) == 'I' && !r.owed() &&
		len(r.heldFatal) == 0 && !r.rewrite.armed && !r.rewrite.active() && !r.timedOut.Load()
}

// resume readies a paused relay to run again; stay: never kicked again
// (the session stays on this process).
func (r *relay) resume(stay bool) {
	if stay {
		r.handOffWanted.Store(false)
	}
	r.upErr, r.downErr = nil, nil
	r.serverFirst.Store(false)
	r.watchMu.Lock()
	r.handOffStop.Store(false)
	r.stopping.Store(false)
	r.watchMu.Unlock()
	r.watch() // the deadlines and timer the state calls for
}
