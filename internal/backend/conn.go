// Package backend owns connections from sluice to PostgreSQL: dialing with
// retries and backoff, logging in, tracking the server's parameters, and
// cleaning a connection between sessions. A *Conn belongs to exactly one
// holder at a time (the pool when idle, a session when busy); it starts no
// goroutines.
package backend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxServerMessage bounds messages read outside the relay (startup, reset).
const maxServerMessage = 1 << 24

// Conn is one logged-in server connection.
type Conn struct {
	net.Conn
	// Addr is the server as configured (for logs and errors).
	Addr string
	// Network and Address are what was dialled; cancel requests go there
	// even if a reload has since changed the configured hosts.
	Network, Address string
	// PID and Secret are the server's BackendKeyData.
	PID    uint32
	Secret []byte
	// Params holds the server's current ParameterStatus values as sluice
	// last read them (at login, and in its own exchanges: settings sync,
	// reset, snapshot). Owned like the connection; change it only
	// through setParam.
	Params map[string]string
	// Created is when the connection was opened.
	Created time.Time
	// Borrowed is when its current holder took it from its pool; set by
	// the pool's owner (proxy) at each borrow, read when the borrow ends,
	// for the transaction-duration metric. Owned like the connection.
	Borrowed time.Time

	// startup is the client parameter set sent in the connection's
	// StartupMessage (nil: none); shared, read-only.
	opened *StartupSet
	// tx is transaction pooling's knowledge of the session (see Tx).
	tx *TxState
	// applied are the settings (lower-case names) Apply or ResetFor set
	// since the last DISCARD ALL, in session pooling.
	applied map[string]string
	// appName is Params["application_name"], readable by the console
	// while another goroutine owns the connection (see ApplicationName).
	appName atomic.Pointer[string]
	// poller and alive wait on and peek at the socket (see Poller, Alive).
	poller, alive *wire.Poller

	// br buffers reads outside the relay; it must be empty whenever the
	// relay takes over the raw Conn.
	br *bufio.Reader
}

// setParam records a ParameterStatus value the server reported.
func (c *Conn) setParam(name, value string) {
	c.Params[name] = value
	if name == "application_name" {
		c.appName.Store(&value) // one allocation per change of application_name, in sluice's own exchanges
	}
}

// ApplicationName is the server session's application_name as sluice
// last read it: what the connection was opened with, then what a
// settings sync, a reset or a snapshot of the session reported (a
// change a session-mode client makes itself is relayed without being
// read, and shows once sluice next talks to the server). Safe from any
// goroutine: SHOW SERVERS reads it while the holder uses the
// connection.
func (c *Conn) ApplicationName() string {
	if p := c.appName.Load(); p != nil {
		return *p
	}
	return ""
}

// ServerError is an ErrorResponse the server sent; its fields are relayed
// to the client as they are. It is auth's type so that login failures and
// later errors look the same to callers.
type ServerError = auth.ServerError

// Send encodes msgs and writes them in one call.
func (c *Conn) Send(msgs ...pgproto3.FrontendMessage) error {
	buf := make([]byte, 0, 64)
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return err
		}
	}
	_, err := c.Conn.Write(buf)
	return err
}

// Receive reads and decodes the next message (outside the relay only).
func (c *Conn) Receive() (pgproto3.BackendMessage, error) {
	typ, body, err := wire.ReadMessage(c.reader(), maxServerMessage)
	if err != nil {
		return nil, err
	}
	return decode(typ, body)
}

func (c *Conn) reader() io.Reader {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.Conn, 4096)
	}
	return c.br
}

// release drops the read buffer once the exchange is over, so an idle
// connection holds no buffer. Bytes still buffered mean the server sent
// something we did not expect: the connection cannot be trusted.
func (c *Conn) release() error {
	if c.br != nil && c.br.Buffered() > 0 {
		return errors.New("server sent unexpected data after ReadyForQuery")
	}
	c.br = nil
	return nil
}

// readUntilReady reads messages until ReadyForQuery, recording
// ParameterStatus and handing every other message to fn (which may be nil).
// It returns the transaction status and the first ErrorResponse seen.
func (c *Conn) readUntilReady(fn func(pgproto3.BackendMessage)) (status byte, srvErr *pgproto3.ErrorResponse, err error) {
	for {
		msg, err := c.Receive()
		if err != nil {
			return 0, nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			return m.TxStatus, srvErr, nil
		case *pgproto3.ParameterStatus:
			c.setParam(m.Name, m.Value)
		case *pgproto3.ErrorResponse:
			if srvErr == nil {
				srvErr = m
			}
		}
		if fn != nil {
			fn(msg)
		}
	}
}

// Alive reports, without blocking, whether an idle connection is usable.
// For a TLS connection the socket under it is checked: an idle server
// sends nothing, so any byte there (a TLS alert, an error) means trouble.
func (c *Conn) Alive() bool {
	if c.alive == nil {
		raw := c.Conn
		if tc, ok := raw.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		c.alive = wire.NewPoller(raw)
	}
	return c.alive.Alive()
}

// Poller waits for the connection to become readable (made once, kept
// with the connection so a relay per transaction allocates none).
func (c *Conn) Poller() *wire.Poller {
	if c.poller == nil {
		c.poller = wire.NewPoller(c.Conn)
	}
	return c.poller
}

// Cancel asks the server to cancel what this connection is running.
func (c *Conn) Cancel(ctx context.Context) error {
	return Cancel(ctx, c.Network, c.Address, c.PID, c.Secret)
}

// CreatedAt is when the connection was opened (the pool's max_lifetime
// counts from it).
func (c *Conn) CreatedAt() time.Time { return c.Created }

// closeWait bounds how long Terminate waits for the server to end.
const closeWait = time.Second

// Terminate closes a connection at a clean point (idle in its pool, or
// released healthy) the way a client leaving does: Terminate, then wait
// (at most closeWait) for the server to close its end. When it returns
// the server process has left pg_stat_activity, so that a pool that
// closes one connection to open another (max_db_connections, see
// pool.Gate) never shows the server one more than its limit. Only the
// connection's owner may call it (it reads the socket).
func (c *Conn) Terminate() error {
	c.Conn.SetDeadline(time.Now().Add(closeWait))
	if _, err := c.Conn.Write([]byte{'X', 0, 0, 0, 4}); err == nil {
		var buf [512]byte
		for {
			if _, err := c.Conn.Read(buf[:]); err != nil {
				break // EOF: the server is gone (or the wait ran out)
			}
		}
	}
	return c.Conn.Close()
}
