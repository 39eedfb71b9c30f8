package txcore

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/internal/backend/stmtcache"
	"github.com/sluice-proxy/sluice/internal/wire"

	"github.com/sluice-proxy/sluice/internal/testutil/fuzzkit"
)

// The model-based fuzz target of DownFilter: a generated server stream,
// cut anywhere, against a message-by-message model of what the client
// must receive and what Books must record.

// newFuzzBooks builds an attachment's books as the filter sees them:
// the client's mode and statements, the connection's statement cache,
// the pool's parsed set, and the mutex that guards them.
func newFuzzBooks(statement bool, maxStatements int) (*Books, *sync.Mutex) {
	c := &Client{PerStatement: statement, MaxStatements: maxStatements, stmts: map[string]*stmt{}}
	b := &Books{}
	b.Init(c, stmtcache.New(maxStatements), new(uint64), &ParsedSet{}, sha256Name)
	return b, &sync.Mutex{}
}

// downMsg is one server message of a generated stream.
type downMsg struct {
	raw        []byte
	start, end int // offsets in the stream
}

// downEntry is one generated queue entry.
type downEntry struct {
	p       pending // answer, action, srv, clientName; z set from batch
	batch   int64   // the ReadyForQuery that ends its batch
	when    byte    // lazy mode: how far before its answer it is queued
	at      int     // lazy mode: queued before the chunk holding this offset
	popMsg  int     // the message that took it off the queue (-1: none)
	skipped bool    // taken off by a ReadyForQuery, not by an answer
}

// genServerStream builds a server stream of valid messages and a queue
// from in. ParseComplete and CloseComplete messages are matched by an
// entry (pass, drop, or asParse) or not; before a ReadyForQuery, entries
// the server skipped may be queued; ReadyForQuery statuses are I, T or E.
func genServerStream(in *fuzzkit.Input) (msgs []downMsg, entries []downEntry, stream []byte) {
	const types = "TDCZ13ESn2"
	batch := int64(1)
	for !in.Empty() && len(msgs) < 96 {
		c := in.Byte()
		typ := types[c%10]
		var body []byte
		switch typ {
		case '1', '3':
			if q := in.Byte(); q&3 != 0 {
				entries = append(entries, downEntry{p: pending{answer: typ, action: answerAction(q&3 - 1)}, batch: batch, when: in.Byte()})
			}
		case 'C':
			// A CommandComplete "PREPARE" awaited (passed or dropped:
			// sqlprepare.go), or any other.
			if q := in.Byte(); q&3 != 0 {
				act := answerPass
				if q&1 != 0 {
					act = answerDrop
				}
				entries = append(entries, downEntry{p: pending{answer: 'C', tag: tagPrepare, action: act}, batch: batch, when: in.Byte()})
				body = []byte(tagPrepare + "\x00")
				break
			}
			body = in.Bytes(int(in.Byte()) % 24)
		case 'Z':
			k := in.Byte()
			for i := range int(k >> 6) {
				answer := "13"[k>>i&1]
				entries = append(entries, downEntry{p: pending{answer: answer, action: answerAction(k >> (2 + i) % 3)}, batch: batch, when: in.Byte()})
			}
			body = []byte{"ITE"[in.Byte()%3]}
			batch++
		default:
			n := int(in.Byte())
			if n < 224 {
				n %= 24
			} else {
				n = (n - 223) * 50
			}
			body = in.Bytes(n)
		}
		m := downMsg{raw: fuzzkit.Frame(typ, body), start: len(stream)}
		stream = append(stream, m.raw...)
		m.end = len(stream)
		msgs = append(msgs, m)
	}
	for j := range entries {
		e := &entries[j]
		e.p.srv = fmt.Sprintf("s%d", j)
		if j%2 == 0 {
			e.p.clientName = fmt.Sprintf("c%d", j)
			e.p.stmt = &stmt{srv: e.p.srv}
		}
	}
	return msgs, entries, stream
}

// downModel works out, message by message and with the whole queue in
// place, what the client must receive: the answer at the head of the
// queue takes its entry's action, a ReadyForQuery takes off the entries
// of its batch still queued. It records which message took off each
// entry; in statement mode the output stops before the first
// ReadyForQuery outside idle (breach, -1 if none). outAfter[i] is the
// output's length once messages before i are through.
func downModel(msgs []downMsg, entries []downEntry, statement bool) (out []byte, outAfter []int, breach int) {
	for j := range entries {
		entries[j].popMsg = -1
	}
	head := 0
	gotZ := int64(0)
	breach = -1
	outAfter = []int{0}
	for i, m := range msgs {
		typ := m.raw[0]
		act := answerPass
		switch typ {
		case '1', '3':
			if head < len(entries) && entries[head].p.answer == typ {
				act = entries[head].p.action
				entries[head].popMsg = i
				head++
			}
		case 'C':
			if head < len(entries) && entries[head].p.answer == 'C' && string(m.raw[5:]) == entries[head].p.tag+"\x00" {
				act = entries[head].p.action
				entries[head].popMsg = i
				head++
			}
		case 'Z':
			gotZ++
			for head < len(entries) && entries[head].batch <= gotZ {
				entries[head].popMsg, entries[head].skipped = i, true
				head++
			}
			if statement && m.raw[5] != 'I' && breach < 0 {
				breach = i
			}
		}
		if breach < 0 {
			switch act {
			case answerPass:
				out = append(out, m.raw...)
			case answerAsParse:
				out = append(out, '1')
				out = append(out, m.raw[1:]...)
			}
		}
		outAfter = append(outAfter, len(out))
	}
	return out, outAfter, breach
}

// FuzzDownFilter feeds the filter a generated server stream cut at
// fuzzer-chosen points, with its queue in place from the start or (lazy)
// filled as the client would: each entry before the server starts the
// message that takes it off. It checks against downModel: the output is
// the input with exactly the dropped answers removed and the asParse
// ones turned into ParseComplete, whatever the cuts; after every chunk
// the output is a prefix of that, holds every message completed, and
// all of it when the chunk ends at a boundary; status and endsWithZ
// report the chunk's ReadyForQuery; at the end the attachment counted
// every ReadyForQuery, kept its last status, saw ParameterStatus, keeps
// exactly the entries not taken off, and undid (statement cache, client
// statement) exactly the skipped ones. In statement mode stmtBreach
// comes on the chunk completing the first ReadyForQuery outside idle and
// the output stops just before it. Raw mode feeds data itself with a
// fixed queue: no panic, only framing errors.
//
// flags bit 0: statement mode; bit 1: lazy queue; bit 2: raw mode,
// flags>>3 entries (raw mode: an odd count also has an UNLISTEN wait
// for its transaction's end, so that CommandComplete tags are read).
func FuzzDownFilter(f *testing.F) {
	f.Fuzz(func(t *testing.T, data, splits []byte, flags uint8) {
		defer fuzzkit.FailOnPanic(t)
		statement, lazy, raw := flags&1 != 0, flags&2 != 0, flags&4 != 0
		if raw {
			fuzzDownRaw(t, data, splits, statement, int(flags>>3))
			return
		}
		msgs, entries, stream := genServerStream(&fuzzkit.Input{B: data})
		want, outAfter, breach := downModel(msgs, entries, statement)
		a, mu := newFuzzBooks(statement, len(entries)+1)
		for j := range entries {
			e := &entries[j]
			a.Statements.Add(e.p.srv)
			if e.p.clientName != "" {
				a.Client.stmts[e.p.clientName] = e.p.stmt
			}
			// Queued no later than the start of the message that takes it
			// off, and in order.
			limit := len(stream)
			if e.popMsg >= 0 {
				limit = msgs[e.popMsg].start
			}
			e.at = limit * int(e.when) / 256
			if j > 0 {
				e.at = max(e.at, entries[j-1].at)
			}
		}
		queued := 0
		enqueue := func(upTo int) {
			mu.Lock()
			defer mu.Unlock()
			for ; queued < len(entries) && (!lazy || entries[queued].at < upTo); queued++ {
				e := entries[queued]
				a.Asks = e.batch - 1
				a.enqueue(e.p)
			}
		}
		var fl DownFilter
		var out []byte
		off, done := 0, 0 // bytes fed; messages completed
		breached := false
		for _, c := range fuzzkit.Chunks(stream, splits) {
			end := off + len(c)
			enqueue(end)
			res, err := fl.Filter(a, mu, c)
			if err != nil {
				t.Fatalf("filter at %d..%d: %v", off, end, err)
			}
			prev := len(out)
			out = append(out, res.Out...)
			first := done
			for done < len(msgs) && msgs[done].end <= end {
				done++
			}
			if res.Unsolicited {
				// The filter stopped before an ErrorResponse that came while
				// nothing was owed: the output is everything before one of
				// this chunk's ErrorResponses, and the attachment ends.
				ok := false
				for k := first; k < done; k++ {
					if msgs[k].raw[0] == 'E' && len(out) == outAfter[k] {
						ok = true
					}
				}
				if !ok || !bytes.Equal(out, want[:len(out)]) {
					t.Fatalf("chunk %d..%d: unsolicited error reported, but output %q does not stop before an ErrorResponse", off, end, out)
				}
				breached = true
				break
			}
			if breach >= 0 && done > breach {
				if !res.StmtBreach {
					t.Fatalf("statement mode: ReadyForQuery %q at %d..%d (chunk %d..%d) not reported as a breach",
						msgs[breach].raw[5], msgs[breach].start, msgs[breach].end, off, end)
				}
				if !bytes.Equal(out, want) {
					t.Fatalf("statement mode: output %q, want %q (before the ReadyForQuery)", out, want)
				}
				breached = true
				break
			}
			if res.StmtBreach {
				t.Fatalf("stmtBreach at %d..%d without a ReadyForQuery outside idle", off, end)
			}
			// out[:prev] was checked with the previous chunk.
			if len(out) > len(want) || !bytes.Equal(out[prev:], want[prev:len(out)]) {
				if breach >= 0 && len(out) > len(want) && bytes.Equal(out[prev:len(want)], want[prev:]) {
					t.Fatalf("statement mode: %d bytes of the ReadyForQuery %q at %d..%d forwarded by chunk %d..%d, before it completed",
						len(out)-len(want), msgs[breach].raw[5], msgs[breach].start, msgs[breach].end, off, end)
				}
				t.Fatalf("chunk %d..%d: output %q from offset %d, want %q", off, end, res.Out, prev, want[prev:min(len(out), len(want))])
			}
			if len(out) < outAfter[done] {
				t.Fatalf("after %d bytes: %d bytes out, messages completed make %d", end, len(out), outAfter[done])
			}
			atBoundary := done > 0 && msgs[done-1].end == end
			if atBoundary && len(out) != outAfter[done] {
				t.Fatalf("chunk ends at a message boundary (%d) but %d of %d bytes are out", end, len(out), outAfter[done])
			}
			var status byte
			for _, m := range msgs[first:done] {
				if m.raw[0] == 'Z' {
					status = m.raw[5]
				}
			}
			if res.Status != status {
				t.Fatalf("chunk %d..%d: status %q, want %q", off, end, res.Status, status)
			}
			if atBoundary && msgs[done-1].raw[0] == 'Z' && !res.EndsWithZ {
				t.Fatalf("chunk %d..%d ends with a ReadyForQuery: endsWithZ false", off, end)
			}
			if res.EndsWithZ && (!atBoundary || status == 0) {
				t.Fatalf("chunk %d..%d: endsWithZ without ending after a ReadyForQuery", off, end)
			}
			off = end
		}
		if breach >= 0 {
			if !breached {
				t.Fatalf("statement mode: stream ended without stmtBreach")
			}
			return
		}
		if breached {
			return // an unsolicited error ended it (checked above)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("output\n%q\nwant\n%q", out, want)
		}
		var zs int64
		status := byte('I')
		sawS := false
		for _, m := range msgs {
			switch m.raw[0] {
			case 'Z':
				zs++
				status = m.raw[5]
			case 'S':
				sawS = true
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if a.GotZ != zs || a.Status != status || a.SawParamStatus != sawS {
			t.Fatalf("gotZ %d status %q sawParamStatus %v, want %d %q %v", a.GotZ, a.Status, a.SawParamStatus, zs, status, sawS)
		}
		left := 0
		for _, e := range entries {
			if e.popMsg < 0 {
				left++
			}
			cached := a.Statements.Has(e.p.srv)
			_, known := a.Client.stmts[e.p.clientName]
			if cached == e.skipped || e.p.clientName != "" && known == e.skipped {
				t.Fatalf("entry %+v: cached %v, client statement kept %v", e, cached, known)
			}
		}
		if len(a.queue) != left || int(a.queued.Load()) != left {
			t.Fatalf("%d entries queued (counter %d), want %d", len(a.queue), a.queued.Load(), left)
		}
		if fl.carryN != 0 {
			t.Fatalf("%d header bytes held at the end of the stream", fl.carryN)
		}
	})
}

// fuzzDownRaw feeds arbitrary bytes: the filter must not panic and may
// fail only on framing; without a queue it forwards its input unchanged,
// except for a cut header it holds back (at most a header's length).
func fuzzDownRaw(t *testing.T, data, splits []byte, statement bool, n int) {
	a, mu := newFuzzBooks(statement, 1)
	mu.Lock()
	for i := range n {
		a.Asks = int64(i / 2)
		switch i % 3 {
		case 2:
			a.enqueue(pending{answer: 'C', tag: tagPrepare, action: answerDrop})
		default:
			a.enqueue(pending{answer: "13"[i%2], action: answerAction(i % 3)})
		}
	}
	if n%2 == 1 { // an UNLISTEN awaits its transaction's end: tags are read (listens.go)
		a.txUnlistens = append(a.txUnlistens, pendingUnlisten{z: 1, channel: "ch"})
		a.unlistenOpen.Store(true)
	}
	mu.Unlock()
	var fl DownFilter
	fed := 0
	var out []byte
	for _, c := range fuzzkit.Chunks(data, splits) {
		res, err := fl.Filter(a, mu, c)
		if err != nil {
			var el wire.ErrLength
			if !errors.As(err, &el) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("filter: %v", err)
			}
			return
		}
		fed += len(c)
		if res.StmtBreach || res.Unsolicited {
			return // the output stops before the breach or the unsolicited error
		}
		out = append(out, res.Out...)
		if n == 0 && (!bytes.HasPrefix(data[:fed], out) || fed-len(out) > wire.HeaderLen) {
			t.Fatalf("without a queue: output %q after %d bytes of %q", out, fed, data[:fed])
		}
	}
}
