package proxy

// Every Parse and Close that transaction pooling sends to the server is
// queued with what to do with its answer (ParseComplete '1' or
// CloseComplete '3'). The server answers them in order, or skips them all
// after an error until the next Sync; so the head of the queue always
// belongs to the next answer, and entries still queued when their
// batch's ReadyForQuery arrives were skipped.

// answerAction says what happens to the server's answer.
type answerAction uint8

const (
	answerPass    answerAction = iota // the client's own Parse or Close: forward
	answerDrop                        // sluice's own Parse or Close: drop
	answerAsParse                     // a Close standing in for the Parse of a statement already prepared: answer ParseComplete
)

// pending is one Parse or Close awaiting its answer.
type pending struct {
	answer byte // '1' or '3'
	action answerAction
	z      int64 // the ReadyForQuery (counted from attach) ending its batch
	// Undone if the server skipped it: srv leaves the statement cache,
	// and the client's statement clientName (if still stmt) is forgotten.
	srv        string
	clientName string
	stmt       *clientStmt
}

// enqueueLocked records a message about to be sent (a.mu held).
func (a *attachment) enqueueLocked(p pending) {
	p.z = a.asks + 1
	a.queue = append(a.queue, p)
	a.queued.Add(1)
}

// answerLocked pops the entry for an answer of type typ and says what to
// do with it (a.mu held). Without a matching entry the answer passes.
func (a *attachment) answerLocked(typ byte) answerAction {
	if len(a.queue) == 0 || a.queue[0].answer != typ {
		a.ss.srv.log.Warn("transaction pooling: unexpected answer from server; passing it on", "type", string(typ))
		return answerPass
	}
	act := a.queue[0].action
	if typ == '1' && a.queue[0].srv != "" {
		a.entry.parsed.add(a.queue[0].srv)
	}
	a.popLocked()
	return act
}

func (a *attachment) popLocked() {
	a.queue[0] = pending{}
	a.queue = a.queue[1:]
	if len(a.queue) == 0 {
		a.queue = nil
	}
	a.queued.Add(-1)
}

// readyLocked handles ReadyForQuery number z: entries of its batch that
// were never answered were skipped by the server, so what they would
// have created does not exist.
func (a *attachment) readyLocked(z int64) {
	for len(a.queue) > 0 && a.queue[0].z <= z {
		p := a.queue[0]
		if p.srv != "" {
			a.tx.Statements.Remove(p.srv)
			if p.answer == '1' {
				a.entry.parsed.remove(p.srv) // skipped, maybe refused: no longer known to parse
			}
		}
		if p.clientName != "" && a.client.stmts[p.clientName] == p.stmt {
			delete(a.client.stmts, p.clientName)
		}
		a.popLocked()
	}
}
