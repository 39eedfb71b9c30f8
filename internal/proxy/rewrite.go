package proxy

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxRewriteBuffer bounds what the slow path holds back. A message larger
// than this (a big row) ends the slow path: it is forwarded unchanged.
const maxRewriteBuffer = 64 << 10

// rewriter is the relay's slow path, used only after receive_timeout fired
// and until the first 57014 ("canceling statement due to user request")
// or ReadyForQuery: it assembles whole messages so that this error can be
// replaced by one that names receive_timeout. Every other message is
// forwarded byte for byte. It is entered only at a message boundary.
type rewriter struct {
	armed bool   // still looking for the cancellation error
	pend  []byte // bytes of an incomplete message, carried to the next chunk
}

func (w *rewriter) active() bool { return len(w.pend) > 0 }

// forward writes chunk's complete messages to dst, rewriting the first
// cancellation error, and keeps an incomplete tail for the next call.
func (w *rewriter) forward(dst io.Writer, chunk []byte, timeout time.Duration) error {
	buf := append(w.pend, chunk...)
	w.pend = nil
	if len(buf) > maxRewriteBuffer {
		w.armed = false // too big to hold back: give up, stay byte-exact
		_, err := dst.Write(buf)
		return err
	}
	out := make([]byte, 0, len(buf)+64)
	for len(buf) >= wire.HeaderLen {
		n := int(binary.BigEndian.Uint32(buf[1:5])) + 1
		if n < wire.HeaderLen || len(buf) < n {
			break
		}
		msg := buf[:n]
		buf = buf[n:]
		if w.armed {
			switch msg[0] {
			case 'E':
				var e pgproto3.ErrorResponse
				if err := e.Decode(msg[wire.HeaderLen:]); err == nil && e.Code == wire.CodeQueryCanceled {
					w.armed = false
					e.Message = fmt.Sprintf("canceling statement due to receive_timeout: the server sent nothing for %s (backend.receive_timeout)", timeout)
					if enc, err := e.Encode(out); err == nil {
						out = enc
						continue
					}
				}
			case 'Z':
				w.armed = false
			}
		}
		out = append(out, msg...)
	}
	if len(buf) > 0 {
		w.pend = append([]byte(nil), buf...)
	}
	_, err := dst.Write(out)
	return err
}
