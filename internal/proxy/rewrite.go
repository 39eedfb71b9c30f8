package proxy

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// rewriter is the relay's slow path, used only between a receive_timeout
// firing and the next ReadyForQuery: it assembles whole messages so that
// the server's "canceling statement due to user request" (57014) can be
// replaced by an error that names receive_timeout. Every other message is
// forwarded byte for byte. It is entered only at a message boundary.
type rewriter struct {
	pend []byte // bytes of an incomplete message, carried to the next chunk
}

func (w *rewriter) active() bool { return len(w.pend) > 0 }

// forward writes chunk's complete messages to dst, rewriting the
// cancellation error, and keeps an incomplete tail for the next call.
// timedOut is cleared at ReadyForQuery, ending the slow path.
func (w *rewriter) forward(dst io.Writer, chunk []byte, timeout time.Duration, timedOut *atomic.Bool) error {
	buf := append(w.pend, chunk...)
	out := make([]byte, 0, len(buf))
	for len(buf) >= wire.HeaderLen {
		n := int(binary.BigEndian.Uint32(buf[1:5])) + 1
		if n < wire.HeaderLen || len(buf) < n {
			break
		}
		msg := buf[:n]
		buf = buf[n:]
		switch msg[0] {
		case 'E':
			var e pgproto3.ErrorResponse
			if err := e.Decode(msg[wire.HeaderLen:]); err == nil && e.Code == wire.CodeQueryCanceled {
				e.Message = fmt.Sprintf("canceling statement due to receive_timeout: the server sent nothing for %s (backend.receive_timeout)", timeout)
				if enc, err := e.Encode(out); err == nil {
					out = enc
					continue
				}
			}
		case 'Z':
			timedOut.Store(false)
		}
		out = append(out, msg...)
	}
	w.pend = append(w.pend[:0], buf...)
	if len(w.pend) == 0 {
		w.pend = nil
	}
	_, err := dst.Write(out)
	return err
}
