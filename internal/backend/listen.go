package backend

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// TakeListens reads the channels the session on this connection listens
// to and stops listening to all of them, in one round trip: transaction
// pooling moves a client's LISTENs from the connection its transaction
// ran on to the pool's listener (internal/notify), so that the
// connection goes back to the pool listening to nothing. It must run
// with the connection idle (ReadyForQuery 'I'); the SELECT sees the
// channels before the UNLISTEN, which both run in one implicit
// transaction.
func (c *Conn) TakeListens(ctx context.Context) ([]string, error) {
	var channels []string
	_, err := c.exec(ctx, "SELECT pg_catalog.pg_listening_channels(); UNLISTEN *", func(m pgproto3.BackendMessage) {
		if r, ok := m.(*pgproto3.DataRow); ok && len(r.Values) == 1 && r.Values[0] != nil {
			channels = append(channels, string(r.Values[0]))
		}
	})
	return channels, err
}

// ReceiveWithin is Receive for a connection that idles between
// messages (the LISTEN fan-out's listener): it waits up to d for the
// server to send something and returns nil, nil if nothing came, having
// consumed no byte, so the caller can look around and wait again. The
// read deadline is the caller's otherwise: one set in the past from
// another goroutine ends the wait (nil, nil) or the read (an error). A
// connection whose socket cannot be polled (TLS) waits in Receive
// without a limit.
func (c *Conn) ReceiveWithin(d time.Duration) (pgproto3.BackendMessage, error) {
	if c.br == nil || c.br.Buffered() == 0 {
		c.Conn.SetReadDeadline(time.Now().Add(d))
		err := c.Poller().Wait()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, nil
		case err != nil && err != wire.ErrNoRawConn:
			return nil, err
		}
		c.Conn.SetReadDeadline(time.Time{})
	}
	return c.Receive()
}
