package proxy

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxClientMessage is PostgreSQL's own bound on a message (MaxAllocSize).
const maxClientMessage = 1<<30 - 1

// upFramer cuts the client's byte stream into messages for transaction
// pooling. Messages are handed over whole (a view into the chunk when it
// holds the message, else a copy assembled across chunks) so that names
// can be rewritten, except CopyData, which streams through as it arrives
// however large it is. Owned by the session goroutine.
type upFramer struct {
	hdr    [wire.HeaderLen]byte
	hdrLen int
	remain uint32 // body bytes of the current message still to come
	stream bool   // the current message is CopyData, forwarded piecewise
	held   []byte // the current message so far, header included
}

// upSink receives what the framer finds.
type upSink interface {
	message(msg []byte) error             // a whole message, header included
	streamBytes(b []byte, end bool) error // part of a CopyData; end on its last part
}

// midStream reports whether part of a CopyData has been handed on and
// the rest has not: the server connection is then mid-message.
func (f *upFramer) midStream() bool { return f.stream && f.hdrLen == wire.HeaderLen }

// feed cuts chunk into messages; it stops at the first error.
func (f *upFramer) feed(chunk []byte, sink upSink) error {
	for len(chunk) > 0 {
		if f.hdrLen == 0 && len(chunk) >= wire.HeaderLen && chunk[0] != 'd' {
			// Fast path: the whole message is in this chunk.
			l := binary.BigEndian.Uint32(chunk[1:wire.HeaderLen])
			if l >= 4 && l <= maxClientMessage && uint64(len(chunk)) > uint64(l) {
				if err := sink.message(chunk[:l+1]); err != nil {
					return err
				}
				chunk = chunk[l+1:]
				continue
			}
		}
		if f.hdrLen < wire.HeaderLen {
			n := copy(f.hdr[f.hdrLen:], chunk)
			f.hdrLen += n
			chunk = chunk[n:]
			if f.hdrLen < wire.HeaderLen {
				return nil
			}
			l := binary.BigEndian.Uint32(f.hdr[1:])
			if l < 4 || l > maxClientMessage {
				return wire.ErrLength{Type: f.hdr[0], Length: l}
			}
			f.remain = l - 4
			f.stream = f.hdr[0] == 'd'
			if f.stream {
				if err := sink.streamBytes(f.hdr[:], f.remain == 0); err != nil {
					return err
				}
			} else {
				f.held = append(f.held[:0], f.hdr[:]...)
			}
			if f.remain == 0 {
				if err := f.finish(sink); err != nil {
					return err
				}
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
		if f.stream {
			if err := sink.streamBytes(part, f.remain == 0); err != nil {
				return err
			}
			if f.remain == 0 {
				f.hdrLen, f.stream = 0, false
			}
			continue
		}
		f.held = append(f.held, part...)
		if f.remain == 0 {
			if err := f.finish(sink); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish ends the current message: a held one is handed over and its
// assembly buffer dropped, so an idle client keeps none (messages span
// chunks rarely).
func (f *upFramer) finish(sink upSink) error {
	f.hdrLen = 0
	if f.stream {
		f.stream = false
		return nil
	}
	err := sink.message(f.held)
	f.held = nil
	return err
}
