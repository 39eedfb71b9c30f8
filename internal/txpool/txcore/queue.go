package txcore

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
	stmt       *stmt
}

// enqueue records a message about to be sent (mu held).
func (b *Books) enqueue(p pending) {
	p.z = b.Asks + 1
	b.queue = append(b.queue, p)
	b.queued.Add(1)
}

// answer pops the entry for an answer of type typ and says what to do
// with it (mu held). Without a matching entry the answer passes, and
// unexpected is true (the caller logs it).
func (b *Books) answer(typ byte) (act answerAction, unexpected bool) {
	if len(b.queue) == 0 || b.queue[0].answer != typ {
		return answerPass, true
	}
	act = b.queue[0].action
	if typ == '1' && b.queue[0].srv != "" && b.Parsed != nil {
		b.Parsed.add(b.queue[0].srv)
	}
	b.pop()
	return act, false
}

func (b *Books) pop() {
	b.queue[0] = pending{}
	b.queue = b.queue[1:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	b.queued.Add(-1)
}

// ready handles ReadyForQuery number z (mu held): entries of its batch
// that were never answered were skipped by the server, so what they
// would have created does not exist.
func (b *Books) ready(z int64) {
	for len(b.queue) > 0 && b.queue[0].z <= z {
		p := b.queue[0]
		if p.srv != "" {
			b.Statements.Remove(p.srv)
			if p.answer == '1' && b.Parsed != nil {
				b.Parsed.remove(p.srv) // skipped, maybe refused: no longer known to parse
			}
		}
		if p.clientName != "" && b.Client.stmts[p.clientName] == p.stmt {
			delete(b.Client.stmts, p.clientName)
		}
		b.pop()
	}
}
