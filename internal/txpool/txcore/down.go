package txcore

import (
	"sync"

	"github.com/sluice-proxy/sluice/internal/wire/frames"
)

// DownFilter is the server-to-client side of one attachment. Bytes are
// forwarded as read; the scanner finds ReadyForQuery (to know when the
// connection can go back to the pool) and, only while Parse or Close
// answers are awaited, the 5-byte ParseComplete and CloseComplete
// messages that must be dropped or turned into one another. To edit a
// message whose header a read cut in two, the cut header (or a
// ReadyForQuery's header without its status) is held back and sent with
// the next chunk. Owned by the attachment's loop; the zero value is
// ready.
type DownFilter struct {
	scan    frames.Scanner
	carry   [maxHeldCommand]byte
	carryN  int
	tagBuf  [maxHeldCommand]byte // tag's, for a CommandComplete split by a read
	scratch []byte
	edits   []downEdit
}

type downEdit struct {
	at   int // offset of the message in carry+chunk
	n    int // its length, when dropped
	drop bool
}

// maxHeldCommand bounds the CommandComplete the filter holds back while
// it awaits one to drop (sqlprepare.go: "PREPARE" is 13 bytes in all).
const maxHeldCommand = 32

// DownResult says what a chunk contained that the attachment acts on.
type DownResult struct {
	Out        []byte // what to write to the client (the chunk, or the filter's scratch until the next Filter)
	EndsWithZ  bool   // the chunk ends exactly after a ReadyForQuery
	Status     byte   // its status
	StmtBreach bool   // statement mode: a transaction was opened (Out stops before its ReadyForQuery)
	// Unsolicited: the server sent an error while the client owed it
	// nothing and was idle (Out stops before it): the server is ending
	// the connection (FATAL after postmaster death, pg_terminate_backend,
	// idle_session_timeout), and the client, idle, keeps its own.
	Unsolicited bool
	// Fatal: Out holds a FATAL the server sent (whole in this chunk); it
	// closes the connection next and the client has been told why.
	Fatal bool
	// Unexpected counts ParseComplete/CloseComplete answers no queued
	// request matched (passed on; the caller logs them), the last of
	// type UnexpectedType.
	Unexpected     int
	UnexpectedType byte
	// Ready counts the ReadyForQuery messages in the chunk, ReadyIdle
	// those with status 'I' (the pool's query and transaction counters).
	Ready, ReadyIdle int
}

// Filter scans chunk and returns the bytes to forward, recording answers
// in b under mu (taken only for the messages that matter, not for rows).
func (f *DownFilter) Filter(b *Books, mu *sync.Mutex, chunk []byte) (DownResult, error) {
	var res DownResult
	f.edits = f.edits[:0]
	base := f.carryN
	lastEnd, cut := -1, -1
	var visitErr error
	err := f.scan.Scan(chunk, 0, func(typ byte, bodyLen uint32, first byte, end int) {
		msgEnd := end + base
		msgStart := msgEnd - frames.HeaderLen - int(bodyLen)
		lastEnd = msgEnd
		switch typ {
		case '1', '3':
			if b.queued.Load() == 0 {
				return
			}
			mu.Lock()
			act, unexpected := b.answer(typ)
			mu.Unlock()
			if unexpected {
				res.Unexpected++
				res.UnexpectedType = typ
			}
			if act == answerPass {
				return
			}
			if msgStart < 0 {
				visitErr = ErrMalformed // cannot happen: headers are carried while answers are awaited
				return
			}
			f.edits = append(f.edits, downEdit{at: msgStart, n: frames.HeaderLen, drop: act == answerDrop})
		case 'C':
			// Only while an UNLISTEN awaits its transaction's end
			// (listens.go), or sluice awaits the CommandComplete of a
			// statement it added to a Query (sqlprepare.go): an atomic
			// load each otherwise.
			if b.unlistenOpen.Load() {
				if end := commandEnd(first, bodyLen, f.tag(chunk, base, msgStart, msgEnd)); end != txGoesOn {
					mu.Lock()
					b.unlistenCommand(end)
					mu.Unlock()
				}
			}
			if b.queued.Load() == 0 {
				return
			}
			mu.Lock()
			act, ok := b.answerCommand(first, bodyLen, f.tag(chunk, base, msgStart, msgEnd))
			mu.Unlock()
			if !ok || act != answerDrop {
				return
			}
			if msgStart < 0 {
				// Cannot happen: such a CommandComplete is held back whole.
				res.Unexpected++
				res.UnexpectedType = typ
				return
			}
			f.edits = append(f.edits, downEdit{at: msgStart, n: frames.HeaderLen + int(bodyLen), drop: true})
		case 'Z':
			res.Status = first
			res.Ready++
			if first == 'I' {
				res.ReadyIdle++
			}
			mu.Lock()
			b.GotZ++
			b.Status = first
			b.ready(b.GotZ)
			if len(b.txUnlistens) > 0 || b.txAborted {
				b.unlistenReady(first)
			}
			mu.Unlock()
			if b.Client.PerStatement && first != 'I' && cut < 0 && msgStart >= 0 {
				cut, res.StmtBreach = msgStart, true
			}
		case 'S':
			mu.Lock()
			b.SawParamStatus = true
			mu.Unlock()
		case 'E':
			if b.unlistenOpen.Load() {
				mu.Lock()
				b.unlistenError()
				mu.Unlock()
			}
			if cut >= 0 || msgStart < 0 {
				return
			}
			mu.Lock()
			idle := b.idleForUnsolicited()
			mu.Unlock()
			if idle {
				cut, res.Unsolicited = msgStart, true
			} else if msgStart >= base && frames.IsFatal(chunk[msgStart-base:msgEnd-base]) {
				res.Fatal = true
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
		hold = frames.HeaderLen
	}
	if hold == 0 && (b.queued.Load() != 0 || b.unlistenOpen.Load()) {
		// A short CommandComplete cut by the read, while one may be
		// awaited to drop, or one may end an UNLISTEN's transaction: hold
		// it back, so that it is dropped or read whole.
		if typ, seen := f.scan.InMessage(); typ == 'C' && seen <= maxHeldCommand && seen <= base+len(chunk) {
			mu.Lock()
			if b.awaitsCommand() || len(b.txUnlistens) > 0 {
				hold = seen
			}
			mu.Unlock()
		}
	}
	res.EndsWithZ = lastEnd == total && res.Status != 0 && f.scan.AtBoundary()
	if base == 0 && hold == 0 && len(f.edits) == 0 && cut < 0 {
		res.Out = chunk
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
		if e.at+e.n > len(buf) {
			continue // past the statement-mode cut
		}
		if e.drop {
			buf = append(buf[:e.at], buf[e.at+e.n:]...)
		} else {
			buf[e.at] = '1'
		}
	}
	f.scratch = buf[:0]
	if cap(f.scratch) > 1<<20 {
		f.scratch = nil
	}
	res.Out = buf
	return res, nil
}

// tag returns the body of the message from msgStart to msgEnd (offsets
// in carry+chunk), or nil when it began in a chunk already forwarded.
// Only short CommandCompletes are asked for, which the filter holds back
// whole while they matter (the carry then has their beginning); one
// split between the carry and chunk is joined in tagBuf.
func (f *DownFilter) tag(chunk []byte, base, msgStart, msgEnd int) []byte {
	from := msgStart + frames.HeaderLen
	switch {
	case msgStart < 0 || msgEnd < base || msgEnd-from > len(f.tagBuf):
		return nil
	case from >= base:
		return chunk[from-base : msgEnd-base]
	}
	n := copy(f.tagBuf[:], f.carry[from:base])
	n += copy(f.tagBuf[n:], chunk[:msgEnd-base])
	return f.tagBuf[:n]
}

// Held reports how many header bytes the filter holds back for the next
// chunk.
func (f *DownFilter) Held() int { return f.carryN }
