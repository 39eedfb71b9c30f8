package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testutil/fuzzkit"
)

// The Framer's model-based fuzz target; its helpers are fuzzkit's,
// shared with internal/proxy's fuzz targets.

// --- Framer -------------------------------------------------------------

type frameEvent struct {
	stream, end bool
	b           []byte
}

var errSinkStop = errors.New("sink stops")

// recordingSink copies what the framer hands on (messages are views into
// the chunk) and fails at call failAt (1-based; 0: never).
type recordingSink struct {
	events []frameEvent
	failAt int
}

func (s *recordingSink) record(e frameEvent) error {
	s.events = append(s.events, e)
	if len(s.events) == s.failAt {
		return errSinkStop
	}
	return nil
}

func (s *recordingSink) Message(msg []byte) error {
	return s.record(frameEvent{b: bytes.Clone(msg)})
}

func (s *recordingSink) StreamStart(hdr []byte, end bool) error {
	return s.record(frameEvent{stream: true, end: end, b: bytes.Clone(hdr)})
}

// bindHead records the head as the sink would send it, the names as given.
func (s *recordingSink) BindHead(portal, stmt []byte, restLen uint32, end bool) error {
	return s.record(frameEvent{stream: true, end: end, b: encodeBindHead(portal, stmt, restLen)})
}

func (s *recordingSink) StreamBytes(b []byte, end bool) error {
	return s.record(frameEvent{stream: true, end: end, b: bytes.Clone(b)})
}

// refFraming is what framing b must produce, worked out on the whole
// input: the complete messages, a trailing streamed message cut short
// (handed on as far as it goes), how many bytes are handed on, and the
// first refusal.
type refFraming struct {
	msgs    [][]byte
	partial []byte
	handed  int
	err     error
}

// refFrame frames b as the framer must with bounds maxLen and maxHeld:
// an unknown type, a length below 4 or over maxLen, a Parse over
// maxParse, a Describe, Close or Terminate over maxHeld, and a Bind over maxHeld without its
// names in its first maxHeld bytes are refused; a message cut short is
// handed on as far as it goes when it streams (a Query over maxHeld, a
// Bind over maxHeld once its names are there, any other type).
func refFrame(b []byte, maxLen, maxHeld, maxParse uint32) refFraming {
	var r refFraming
	off := 0
	for len(b)-off >= HeaderLen {
		typ, l := b[off], binary.BigEndian.Uint32(b[off+1:])
		avail := len(b) - off
		switch {
		case !IsFrontendType(typ):
			r.err = ErrUnknownType(typ)
		case l < 4:
			r.err = ErrLength{Type: typ, Length: l}
		case l > maxLen:
			r.err = ErrTooLarge{Type: typ, Length: l, Limit: maxLen}
		case typ == 'P' && l > maxParse, l > maxHeld && bytes.IndexByte([]byte("DCX"), typ) >= 0:
			r.err = ErrHeldTooLarge{Type: typ, Length: l}
		case l > maxHeld && typ == 'B' && bindNamesEnd(b[off:off+min(avail, int(l)+1)], maxHeld) < 0 && avail >= int(maxHeld):
			r.err = ErrNoBindNames
		}
		if r.err != nil {
			break
		}
		if uint64(avail) < uint64(l)+1 {
			streams := bytes.IndexByte([]byte("PDCXQB"), typ) < 0 ||
				l > maxHeld && (typ == 'Q' || typ == 'B' && bindNamesEnd(b[off:], maxHeld) >= 0)
			if streams {
				r.partial = b[off:]
				r.handed = len(b)
				return r
			}
			break
		}
		r.msgs = append(r.msgs, b[off:off+int(l)+1])
		off += int(l) + 1
	}
	r.handed = off
	return r
}

// fuzzClientStream builds a valid client stream from in: a quarter of
// the messages CopyData, bodies mostly small, some of up to ~4 kB.
func fuzzClientStream(in *fuzzkit.Input, maxHeld, maxParse uint32) []byte {
	const types = "BCDEFHPQSXcfd"
	var out []byte
	for n := 0; !in.Empty() && n < 64; n++ {
		typ := in.Byte()
		if typ < 64 {
			typ = 'd'
		} else {
			typ = types[int(typ)%len(types)]
		}
		l := int(in.Byte())
		if l < 192 {
			l %= 16
		} else {
			l = (l - 192) * 64
		}
		if bytes.IndexByte([]byte("DCX"), typ) >= 0 {
			l = min(l, int(maxHeld)-HeaderLen)
		}
		if typ == 'P' {
			l = min(l, int(maxParse)-HeaderLen)
		}
		body := in.Bytes(l)
		if typ == 'B' && l >= 2 {
			body[0], body[1] = 0, 0 // unnamed portal and statement
		}
		out = append(out, fuzzkit.Frame(typ, body)...)
	}
	return out
}

// FuzzFramer feeds the framer a stream cut at fuzzer-chosen points and
// checks what it hands on against framing worked out on the whole input:
// the same messages whatever the cuts; a streamed message (never one
// the framer must hold) handed on in non-empty parts, header first, end
// set on exactly the last, concatenating to the message (a Bind's head
// re-encoded from its names); midStream true exactly while a message is
// partly handed on; no assembly buffer kept between messages; everything
// handed on a prefix of the input (all of it for a valid stream); an
// unknown type, an invalid or too large length, a held message over its
// bound or a large Bind without names refused (refFrame) with nothing of
// that message or after it handed on; a sink error stops feed at once;
// the input is never written to.
//
// mode bit 0: build a valid stream from data (else data is the stream);
// bit 1: hold at most 64 bytes, a Parse 96 (else MaxHeldMessage and
// MaxHeldParse), so that Query and Bind stream; bit 2: limit messages to 512 bytes (else
// MaxMessage); mode>>4: the sink fails at that call (0: never).
func FuzzFramer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data, splits []byte, mode uint8) {
		defer fuzzkit.FailOnPanic(t)
		var fr Framer
		maxLen, maxHeld := uint32(MaxMessage), uint32(MaxHeldMessage)
		maxParse := uint32(MaxHeldParse)
		if mode&2 != 0 {
			fr.MaxHeld, maxHeld = 64, 64
			fr.MaxParse, maxParse = 96, 96
		}
		if mode&4 != 0 {
			fr.MaxLen, maxLen = 512, 512
		}
		stream := data
		valid := mode&1 != 0
		if valid {
			stream = fuzzClientStream(&fuzzkit.Input{B: data}, maxHeld, maxParse)
		}
		orig := bytes.Clone(stream)
		ref := refFrame(stream, maxLen, maxHeld, maxParse)
		if valid && mode&4 == 0 && (ref.err != nil || ref.partial != nil || ref.handed != len(stream)) {
			t.Fatalf("test bug: built stream is not valid: %+v", ref)
		}
		sink := &recordingSink{failAt: int(mode >> 4)}
		var err error
		var open []byte // a CopyData partly handed on
		for _, c := range fuzzkit.Chunks(stream, splits) {
			before := len(sink.events)
			err = fr.Feed(c, sink)
			for _, e := range sink.events[before:] {
				if e.stream {
					if len(e.b) == 0 {
						t.Fatalf("empty CopyData part")
					}
					if open == nil {
						if len(e.b) < HeaderLen {
							t.Fatalf("streamed message begins with %q, not a header", e.b)
						}
						if m, _ := fr.plan(e.b[0], binary.BigEndian.Uint32(e.b[1:])); m == frameHeld {
							t.Fatalf("streamed message of type %q, length %d", e.b[0], binary.BigEndian.Uint32(e.b[1:]))
						}
					}
					open = append(open, e.b...)
					if e.end {
						open = nil
					}
				} else if open != nil {
					t.Fatalf("whole message %q handed on inside a streamed one", e.b)
				}
			}
			if sink.failAt > 0 && len(sink.events) >= sink.failAt {
				if !errors.Is(err, errSinkStop) || len(sink.events) != sink.failAt {
					t.Fatalf("sink failed at call %d: feed returned %v after %d calls", sink.failAt, err, len(sink.events))
				}
				break
			}
			if err != nil {
				break
			}
			if got := fr.MidStream(); got != (open != nil) {
				t.Fatalf("midStream() = %v with a message partly handed on: %v", got, open != nil)
			}
			if fr.hdrLen == 0 && fr.held != nil {
				t.Fatalf("assembly buffer kept between messages (%d bytes)", len(fr.held))
			}
		}
		if !bytes.Equal(stream, orig) {
			t.Fatalf("framer wrote to its input")
		}
		var handed []byte
		var units [][]byte // whole messages and complete CopyData, in order
		var cur []byte
		for _, e := range sink.events {
			handed = append(handed, e.b...)
			if !e.stream {
				units = append(units, e.b)
				continue
			}
			cur = append(cur, e.b...)
			if e.end {
				units = append(units, cur)
				cur = nil
			}
		}
		if !bytes.HasPrefix(stream, handed) {
			t.Fatalf("handed on %q, not a prefix of the input %q", handed, stream)
		}
		if errors.Is(err, errSinkStop) {
			if len(units) > len(ref.msgs) {
				t.Fatalf("%d messages, framing the whole gives %d", len(units), len(ref.msgs))
			}
			for i, u := range units {
				if !bytes.Equal(u, ref.msgs[i]) {
					t.Fatalf("message %d: %q, want %q", i, u, ref.msgs[i])
				}
			}
			return
		}
		if ref.err != nil {
			if err != ref.err {
				t.Fatalf("feed returned %v, want %v", err, ref.err)
			}
		} else if err != nil {
			t.Fatalf("feed: %v", err)
		}
		if len(handed) != ref.handed {
			t.Fatalf("handed on %d bytes, want %d", len(handed), ref.handed)
		}
		if len(units) != len(ref.msgs) {
			t.Fatalf("%d messages, framing the whole gives %d", len(units), len(ref.msgs))
		}
		for i, u := range units {
			if !bytes.Equal(u, ref.msgs[i]) {
				t.Fatalf("message %d: %q, want %q", i, u, ref.msgs[i])
			}
		}
		if !bytes.Equal(cur, ref.partial) {
			t.Fatalf("unfinished streamed message %q, want %q", cur, ref.partial)
		}
	})
}

// encodeBindHead encodes a Bind's header and names with restLen bytes to
// follow, independently of the code under test.
func encodeBindHead(portal, stmt []byte, restLen uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'B'}, uint32(4+len(portal)+1+len(stmt)+1)+restLen)
	b = append(append(b, portal...), 0)
	return append(append(b, stmt...), 0)
}
