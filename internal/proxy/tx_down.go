package proxy

import (
	"github.com/sluice-proxy/sluice/internal/wire"
)

// downFilter is the server-to-client side of one attachment. Bytes are
// forwarded as read; the scanner finds ReadyForQuery (to know when the
// connection can go back to the pool) and, only while Parse or Close
// answers are awaited, the 5-byte ParseComplete and CloseComplete
// messages that must be dropped or turned into one another. To edit a
// message whose header a read cut in two, the cut header (or a
// ReadyForQuery's header without its status) is held back and sent with
// the next chunk. Owned by the attachment's goroutine.
type downFilter struct {
	scan    wire.Scanner
	carry   [wire.HeaderLen]byte
	carryN  int
	scratch []byte
	edits   []downEdit
}

type downEdit struct {
	at   int // offset of the message in carry+chunk
	drop bool
}

// downResult says what a chunk contained that the attachment acts on.
type downResult struct {
	out        []byte // what to write to the client
	endsWithZ  bool   // the chunk ends exactly after a ReadyForQuery
	status     byte   // its status
	stmtBreach bool   // statement mode: a transaction was opened (out stops before its ReadyForQuery)
	// unsolicited: the server sent an error while the client owed it
	// nothing and was idle (out stops before it): the server is ending
	// the connection (FATAL after postmaster death, pg_terminate_backend,
	// idle_session_timeout), and the client, idle, keeps its own.
	unsolicited bool
	// fatal: out holds a FATAL the server sent (whole in this chunk); it
	// closes the connection next and the client has been told why.
	fatal bool
}

// filter scans chunk (a.mu not held) and returns the bytes to forward.
func (f *downFilter) filter(a *attachment, chunk []byte) (downResult, error) {
	var res downResult
	f.edits = f.edits[:0]
	base := f.carryN
	lastEnd, cut := -1, -1
	var visitErr error
	err := f.scan.Scan(chunk, 0, func(typ byte, bodyLen uint32, first byte, end int) {
		msgEnd := end + base
		msgStart := msgEnd - wire.HeaderLen - int(bodyLen)
		lastEnd = msgEnd
		switch typ {
		case '1', '3':
			if a.queued.Load() == 0 {
				return
			}
			a.mu.Lock()
			act := a.answerLocked(typ)
			a.mu.Unlock()
			if act == answerPass {
				return
			}
			if msgStart < 0 {
				visitErr = errMalformed // cannot happen: headers are carried while answers are awaited
				return
			}
			f.edits = append(f.edits, downEdit{at: msgStart, drop: act == answerDrop})
		case 'Z':
			res.status = first
			a.mu.Lock()
			a.gotZ++
			a.status = first
			a.readyLocked(a.gotZ)
			a.mu.Unlock()
			a.entry.stats.Ready(first) // the pool's query and transaction counters
			if a.client.perStatement() && first != 'I' && cut < 0 && msgStart >= 0 {
				cut, res.stmtBreach = msgStart, true
			}
		case 'S':
			a.mu.Lock()
			a.sawParamStatus = true
			a.mu.Unlock()
		case 'E':
			if cut >= 0 || msgStart < 0 {
				return
			}
			a.mu.Lock()
			idle := a.asks == a.gotZ && a.status == 'I' && len(a.queue) == 0 && a.lastSent != 'd'
			a.mu.Unlock()
			if idle {
				cut, res.unsolicited = msgStart, true
			} else if msgStart >= base && wire.IsFatal(chunk[msgStart-base:msgEnd-base]) {
				res.fatal = true
			}
		}
	})
	if err == nil {
		err = visitErr
	}
	if err != nil {
		return res, err
	}
	total := base + len(chunk)
	// Hold back a header cut by the read (at most 4 bytes, all in carry
	// and chunk since the previous cut was held back too), and a
	// ReadyForQuery header still missing its status: edits and the
	// statement-mode cut then always see whole messages.
	hold := f.scan.PartialHeader()
	if hold == 0 && f.scan.AwaitingBody() == 'Z' {
		hold = wire.HeaderLen
	}
	res.endsWithZ = lastEnd == total && res.status != 0 && f.scan.AtBoundary()
	if base == 0 && hold == 0 && len(f.edits) == 0 && cut < 0 {
		res.out = chunk
		return res, nil
	}
	buf := append(append(f.scratch[:0], f.carry[:base]...), chunk...)
	newCarry := buf[len(buf)-hold:]
	f.carryN = copy(f.carry[:], newCarry)
	buf = buf[:len(buf)-hold]
	if cut >= 0 {
		buf = buf[:cut]
	}
	// Apply edits back to front so earlier offsets stay valid.
	for i := len(f.edits) - 1; i >= 0; i-- {
		e := f.edits[i]
		if e.at+wire.HeaderLen > len(buf) {
			continue // past the statement-mode cut
		}
		if e.drop {
			buf = append(buf[:e.at], buf[e.at+wire.HeaderLen:]...)
		} else {
			buf[e.at] = '1'
		}
	}
	f.scratch = buf[:0]
	if cap(f.scratch) > 1<<20 {
		f.scratch = nil
	}
	res.out = buf
	return res, nil
}
