package txpool

import "github.com/sluice-proxy/sluice/internal/wire"

// The inline hand-off (docs/design/tx-handoff.md, design (a)), apart
// from the client's loop (serve.go) because it is the one place the
// client's goroutine reads the server: after
// forwarding a complete request, the client's goroutine reads the
// server's answer itself, up to the ReadyForQuery that answers it, and
// detaches inline. No goroutine starts and none is woken besides the
// client's own, as PgBouncer's one thread wakes once per request and
// once per answer. The attachment's goroutine (run) starts only when it
// is needed: the answer is slow (the inline watch, sweep.go, hands it
// over, so the client goroutine goes back to watching its client), the
// client stays attached after the answer (inside a transaction or
// pinned: someone must watch the server between requests, to relay a
// FATAL or notice its loss at once), the request is not complete (Flush,
// COPY, a batch without its Sync) or a write failed.

// readsInline reports whether the client goroutine, having just written
// a request, reads its answer itself (a.mu held): no reader runs yet,
// the write and the framing went well, and the request ends with a
// message the server answers with ReadyForQuery, with nothing of another
// message pending.
func (a *attachment) readsInline(werr, ferr error) bool {
	if a.reader || werr != nil || ferr != nil || !a.client.up.AtBoundary() || a.detached || a.detaching {
		return false
	}
	switch a.LastSent {
	case 'Q', 'S', 'F':
		return true
	}
	return false
}

// startReader hands the attachment to run's goroutine (client goroutine).
func (a *attachment) startReader() {
	if a.reader {
		return
	}
	a.reader = true
	a.done = make(chan struct{})
	if h := a.client.env.ReaderStarted; h != nil {
		h(Probe{a})
	}
	go a.run()
}

// readInline reads the answer to the request just written, on the client
// goroutine, until the connection detaches, the client stays attached
// with every answer in, or the inline watch says the answer is slow;
// in the last two cases run takes over. It reports whether the
// attachment ended fatally (the client was told why).
func (a *attachment) readInline() (fatal bool) {
	c := a.client
	if h := c.env.InlineRead; h != nil {
		h(Probe{a})
	}
	w := &c.env.sweeps
	w.beginInline(a)
	poll := a.Conn.Poller()
	for {
		err := poll.Wait()
		if err == wire.ErrNoRawConn {
			err = nil
		}
		if err == nil {
			err = a.pumpDown(&a.f, c.bufs)
		}
		if err == nil {
			a.mu.Lock()
			busy := a.busyLocked()
			a.mu.Unlock()
			if busy {
				continue
			}
			w.endInline(a)
			a.startReader() // attached between requests: in a transaction, or pinned
			return false
		}
		w.endInline(a) // before the connection can go back to the pool
		switch {
		case isTimeout(err): // only the watch's: wake-ups go to run alone
			a.startReader()
			return false
		case err == errDetach:
			if a.detach() {
				a.startReader() // pinned: stay attached
				return false
			}
			c.att = nil    // ended inline: nothing to wait for, nothing kept
			return a.fatal // set when the snapshot found the server gone
		}
		a.serverLost(err)
		c.att = nil
		return a.fatal
	}
}
