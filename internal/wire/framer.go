package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxMessage is PostgreSQL's own bound on a message (MaxAllocSize),
// the default of limits.max_message_size.
const MaxMessage = 1<<30 - 1

// MaxHeldMessage bounds what the framer assembles in memory for one
// message that a read cut in two: a Describe, Close or Terminate whole
// (their names must be rewritten; a Parse has its own bound,
// MaxHeldParse), a Query or Bind up to this size (a Query's text is lexed whole, a Bind's names
// rewritten), and the head of a larger Bind. Larger Query, Bind,
// FunctionCall and CopyData messages stream through as they arrive, so a
// client's message costs sluice at most this much, not its size.
const MaxHeldMessage = 1 << 20

// MaxHeldParse bounds a Parse, which is held whole whatever the cut:
// transaction pooling keeps every prepared statement's text to prepare it
// again on the next connection (as PgBouncer does), so a Parse costs
// sluice its size anyway; 16 MiB is far above any generated SQL seen in
// practice (a 100,000-item IN list is about 1 MB) while keeping what one
// client can make sluice hold bounded.
const MaxHeldParse = 16 << 20

// Framer cuts a client's byte stream (after startup) into messages for
// a proxy that rewrites some of them (transaction pooling). It does no I/O: it takes chunks and hands its decisions to an
// FrameSink. A message whole in a chunk is handed over as a view into it.
// One cut by a read is either assembled (held) up to MaxHeldMessage and
// handed over whole, or streamed: its header first (streamStart, or
// bindHead for a large Bind, once its names are known), then its body in
// parts as they arrive (streamBytes). Not safe for concurrent use; a proxy's session goroutine owns one.
type Framer struct {
	hdr    [HeaderLen]byte
	hdrLen int
	remain uint32 // body bytes of the current message still to come
	mode   frameMode
	held   []byte // the current message so far, header included (frameHeld, frameBindHead)
	// MaxLen is limits.max_message_size (0: MaxMessage); MaxHeld and
	// MaxParse are MaxHeldMessage and MaxHeldParse (0) or, in tests,
	// smaller. Set before the first Feed.
	MaxLen, MaxHeld, MaxParse uint32
}

type frameMode uint8

const (
	frameHeld     frameMode = iota // assembled in held, handed over whole
	frameStream                    // handed on piecewise as it arrives
	frameBindHead                  // a large Bind: its names assembled in held, the rest streamed
)

// FrameSink receives what the framer finds.
type FrameSink interface {
	Message(msg []byte) error // a whole message, header included
	// StreamStart begins a streamed message: hdr is its header as sent;
	// end when its body is empty.
	StreamStart(hdr []byte, end bool) error
	// BindHead begins a streamed Bind: its portal and statement names,
	// and how many body bytes follow them (streamed next).
	BindHead(portal, stmt []byte, restLen uint32, end bool) error
	StreamBytes(b []byte, end bool) error // part of a streamed body; end on its last part
}

// ErrHeldTooLarge: a message the framer must hold whole is over its
// bound (MaxHeldParse for a Parse, else MaxHeldMessage).
type ErrHeldTooLarge struct {
	Type   byte
	Length uint32
}

func (e ErrHeldTooLarge) Error() string {
	limit := MaxHeldMessage
	if e.Type == 'P' {
		limit = MaxHeldParse
	}
	return fmt.Sprintf("a message of type %q of %d bytes is over the %d bytes transaction pooling holds to rewrite it", e.Type, e.Length, limit)
}

// ErrNoBindNames: a Bind over MaxHeldMessage whose portal and statement
// names do not end within its first MaxHeldMessage bytes.
var ErrNoBindNames = errors.New("a Bind message without its portal and statement names")

// MidStream reports whether part of a streamed message has been handed
// on and the rest has not: the server connection is then mid-message.
func (f *Framer) MidStream() bool { return f.mode == frameStream && f.hdrLen == HeaderLen }

// AtBoundary reports whether nothing of a message is pending: the next
// byte fed starts a message.
func (f *Framer) AtBoundary() bool { return f.hdrLen == 0 }

func (f *Framer) limits() (maxLen, maxHeld uint32) {
	maxLen, maxHeld = f.MaxLen, f.MaxHeld
	if maxLen == 0 {
		maxLen = MaxMessage
	}
	if maxHeld == 0 {
		maxHeld = MaxHeldMessage
	}
	return maxLen, maxHeld
}

// plan decides how a message of type typ and length field l is handled
// when a read cuts it, or refuses it; the same refusals apply to a
// message whole in a chunk, so framing does not depend on where reads
// cut. The checks follow PostgreSQL's order: type, then length.
func (f *Framer) plan(typ byte, l uint32) (frameMode, error) {
	maxLen, maxHeld := f.limits()
	switch {
	case !IsFrontendType(typ):
		return 0, ErrUnknownType(typ)
	case l < 4:
		return 0, ErrLength{Type: typ, Length: l}
	case l > maxLen:
		return 0, ErrTooLarge{Type: typ, Length: l, Limit: maxLen}
	}
	switch typ {
	case 'P':
		maxParse := f.MaxParse
		if maxParse == 0 {
			maxParse = MaxHeldParse
		}
		if l > maxParse {
			return 0, ErrHeldTooLarge{Type: typ, Length: l}
		}
		return frameHeld, nil
	case 'D', 'C', 'X':
		if l > maxHeld {
			return 0, ErrHeldTooLarge{Type: typ, Length: l}
		}
		return frameHeld, nil
	case 'Q':
		if l > maxHeld {
			return frameStream, nil
		}
		return frameHeld, nil
	case 'B':
		if l > maxHeld {
			return frameBindHead, nil
		}
		return frameHeld, nil
	}
	return frameStream, nil // only the type matters
}

// bindNamesEnd returns the offset in a Bind (header included) just past
// its two names, looking only at its first max bytes; -1 if not there.
func bindNamesEnd(msg []byte, max uint32) int {
	if uint64(len(msg)) > uint64(max) {
		msg = msg[:max]
	}
	if len(msg) <= HeaderLen {
		return -1
	}
	i := bytes.IndexByte(msg[HeaderLen:], 0)
	if i < 0 {
		return -1
	}
	at := HeaderLen + i + 1
	j := bytes.IndexByte(msg[at:], 0)
	if j < 0 {
		return -1
	}
	return at + j + 1
}

// Feed cuts chunk into messages; it stops at the first error.
func (f *Framer) Feed(chunk []byte, sink FrameSink) error {
	for len(chunk) > 0 {
		if f.hdrLen == 0 && len(chunk) >= HeaderLen && chunk[0] != 'd' {
			// Fast path: the whole message is in this chunk.
			l := binary.BigEndian.Uint32(chunk[1:HeaderLen])
			if uint64(len(chunk)) > uint64(l) {
				mode, err := f.plan(chunk[0], l)
				if err != nil {
					return err
				}
				_, maxHeld := f.limits()
				if mode != frameBindHead || bindNamesEnd(chunk[:l+1], maxHeld) >= 0 {
					if err := sink.Message(chunk[:l+1]); err != nil {
						return err
					}
					chunk = chunk[l+1:]
					continue
				}
			}
		}
		if f.hdrLen < HeaderLen {
			n := copy(f.hdr[f.hdrLen:], chunk)
			f.hdrLen += n
			chunk = chunk[n:]
			if f.hdrLen < HeaderLen {
				return nil
			}
			if err := f.begin(sink); err != nil {
				return err
			}
			continue
		}
		n := uint32(len(chunk))
		if n > f.remain {
			n = f.remain
		}
		f.remain -= n
		part := chunk[:n]
		chunk = chunk[n:]
		var err error
		switch f.mode {
		case frameStream:
			err = sink.StreamBytes(part, f.remain == 0)
			if f.remain == 0 {
				f.hdrLen = 0
			}
		case frameHeld:
			f.held = append(f.held, part...)
			if f.remain == 0 {
				err = f.finish(sink)
			}
		case frameBindHead:
			f.held = append(f.held, part...)
			err = f.bindHead(sink)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// begin plans the message whose header is complete.
func (f *Framer) begin(sink FrameSink) error {
	l := binary.BigEndian.Uint32(f.hdr[1:])
	mode, err := f.plan(f.hdr[0], l)
	if err != nil {
		return err
	}
	f.remain, f.mode = l-4, mode
	switch mode {
	case frameStream:
		if f.remain == 0 {
			f.hdrLen = 0
		}
		return sink.StreamStart(f.hdr[:], f.remain == 0)
	case frameHeld:
		f.held = append(f.held[:0], f.hdr[:]...)
		if f.remain == 0 {
			return f.finish(sink)
		}
	case frameBindHead:
		f.held = append(f.held[:0], f.hdr[:]...)
	}
	return nil
}

// bindHead hands on a large Bind's head once its names have arrived, and
// what followed them, switching to streaming.
func (f *Framer) bindHead(sink FrameSink) error {
	_, maxHeld := f.limits()
	end := bindNamesEnd(f.held, maxHeld)
	if end < 0 {
		if uint64(len(f.held)) >= uint64(maxHeld) {
			return ErrNoBindNames // no names in the first maxHeld bytes
		}
		return nil
	}
	held := f.held
	f.held = nil
	i := bytes.IndexByte(held[HeaderLen:], 0) + HeaderLen
	rest := held[end:]
	f.mode = frameStream
	last := f.remain == 0
	if last {
		f.hdrLen = 0
	}
	if err := sink.BindHead(held[HeaderLen:i], held[i+1:end-1], uint32(len(rest))+f.remain, last && len(rest) == 0); err != nil {
		return err
	}
	if len(rest) > 0 {
		return sink.StreamBytes(rest, last)
	}
	return nil
}

// finish hands over a held message and drops its assembly buffer, so an
// idle client keeps none (messages span chunks rarely).
func (f *Framer) finish(sink FrameSink) error {
	f.hdrLen = 0
	err := sink.Message(f.held)
	f.held = nil
	return err
}
