package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Options say how to open server connections for one (database, user).
type Options struct {
	Network, Address string // "tcp" or "unix", and what to dial
	Display          string // the server as configured, for logs and errors
	User, Password   string // server login; Password "" works only with trust
	Database         string // dbname on the server
	DialTimeout      time.Duration
	// KeepAlive is the TCP keepalive period; 0 disables keepalive.
	KeepAlive time.Duration
	// Retries is how many times a failed attempt is retried; Wait(k) is the
	// pause before retry k (1-based).
	Retries int
	Wait    func(k int) time.Duration
	Logger  *slog.Logger
	// TLS says whether to ask the server for TLS before logging in.
	TLS TLSOptions
	// Attempted, if set, is told the outcome of every attempt (metrics).
	Attempted func(err error)
	// Startup, when set, is sent in the StartupMessage: the client's
	// startup parameters (see StartupSet).
	Startup *StartupSet
	// Keys, when set, log in instead of Password: what auth_query
	// recovered from a client's login (a SCRAM ClientKey or an md5 hash).
	Keys *auth.ServerKeys
}

// ConnectError is returned when every attempt failed.
type ConnectError struct {
	Addr     string
	Attempts int
	// Err is the last attempt's error; when the caller's deadline cut an
	// attempt short, the last error of an attempt that failed on its own.
	Err error
	// TimedOut: the caller's deadline (a waiting client's borrow_timeout)
	// ended the attempts, not the retry limit.
	TimedOut bool
}

func (e *ConnectError) Error() string {
	if e.TimedOut {
		return fmt.Sprintf("could not connect to server %s in time, after %d attempt(s): %v", e.Addr, e.Attempts, e.Err)
	}
	return fmt.Sprintf("could not connect to server %s after %d attempt(s): %v", e.Addr, e.Attempts, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// minPersistWait is the least pause between the attempts Dial makes past
// Retries for a caller with a deadline, so that backoff: 0s cannot turn
// a long borrow_timeout into a busy loop of connects.
const minPersistWait = 100 * time.Millisecond

// Dial opens and logs in a server connection, retrying failures that may
// pass (network errors, a server starting up or full) with backoff. Errors
// that retrying cannot fix (bad password, unknown database) return at once.
// Nothing of a client's is ever sent here, so retrying is always safe.
//
// How long it tries depends on ctx. Without a deadline (the pool's own
// dials: min_size, health checks) it makes at most Retries+1 attempts.
// With one, someone is waiting for this connection until then (a client,
// up to its borrow_timeout; see pool.Deadline), so it keeps trying past
// Retries, pausing Wait(Retries) (at least minPersistWait) between the
// later attempts, until the deadline: a server back within the client's
// borrow_timeout serves it. Retries 0 still means a single attempt.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	deadline, persist := ctx.Deadline()
	persist = persist && o.Retries > 0
	var last error
	for attempts := 1; ; attempts++ {
		c, err := dialOnce(ctx, o)
		if o.Attempted != nil {
			o.Attempted(err)
		}
		if err == nil {
			return c, nil
		}
		if ctx.Err() == nil || last == nil {
			last = err // not an attempt the deadline cut short
		}
		if !retryable(err) || (attempts > o.Retries && !persist) {
			return nil, &ConnectError{Addr: o.Display, Attempts: attempts, Err: err}
		}
		if ctx.Err() != nil {
			return nil, stoppedError(ctx, o, attempts, last)
		}
		wait := o.waitBefore(attempts)
		if o.Logger != nil {
			if persist {
				o.Logger.Warn("server connection attempt failed", "server", o.Display, "user", o.User,
					"attempt", attempts, "error", err, "next_wait", wait, "deadline_in", time.Until(deadline).Round(time.Millisecond))
			} else {
				o.Logger.Warn("server connection attempt failed", "server", o.Display, "user", o.User,
					"attempt", attempts, "of", o.Retries+1, "error", err, "next_wait", wait)
			}
		}
		if persist && !time.Now().Add(wait).Before(deadline) {
			// No attempt fits before the deadline: an attempt made as
			// it passes would only be cut short.
			<-ctx.Done()
			return nil, stoppedError(ctx, o, attempts, last)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, stoppedError(ctx, o, attempts, last)
			case <-t.C:
			}
		}
	}
}

// waitBefore is the pause before retry k: the backoff schedule up to
// Retries, then its last step.
func (o *Options) waitBefore(k int) time.Duration {
	if o.Wait == nil {
		if k > o.Retries {
			return minPersistWait
		}
		return 0
	}
	if k > o.Retries {
		return max(o.Wait(o.Retries), minPersistWait)
	}
	return o.Wait(k)
}

// stoppedError is the error when ctx ended the attempts: a cancelled
// caller (sluice stopping, the client gone) gets ctx's error; a deadline
// gets the server's last error, which is what the waiting client needs.
func stoppedError(ctx context.Context, o Options, attempts int, last error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &ConnectError{Addr: o.Display, Attempts: attempts, Err: last, TimedOut: true}
	}
	return &ConnectError{Addr: o.Display, Attempts: attempts, Err: ctx.Err()}
}

// retryable reports whether another attempt may succeed.
func retryable(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		code := se.Response.Code
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") || code == "57P03"
	}
	var te *TLSError
	return !errors.Is(err, context.Canceled) && !errors.Is(err, errNoPassword) && !errors.As(err, &te)
}

var errNoPassword = errors.New("no server password")

func dialOnce(ctx context.Context, o Options) (*Conn, error) {
	d := net.Dialer{Timeout: o.DialTimeout, KeepAlive: o.KeepAlive}
	if o.KeepAlive == 0 {
		d.KeepAlive = -1 // net.Dialer's 0 would mean "the default, 15s"
	}
	nc, err := d.DialContext(ctx, o.Network, o.Address)
	if err != nil {
		return nil, err
	}
	nc = wire.NewSocket(nc) // raw syscalls on the relay's hot path
	tctx, done := ctx, context.CancelFunc(func() {})
	if o.DialTimeout > 0 {
		tctx, done = context.WithTimeout(ctx, o.DialTimeout)
	}
	sc, err := startTLS(tctx, nc, o.Network, o.TLS)
	done()
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc = sc
	c := &Conn{Conn: nc, Addr: o.Display, Network: o.Network, Address: o.Address, Params: make(map[string]string, 16), Created: time.Now(),
		opened: o.Startup}
	if err := c.startup(ctx, o); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// startup sends the StartupMessage, logs in and reads up to ReadyForQuery.
func (c *Conn) startup(ctx context.Context, o Options) error {
	defer c.watch(ctx)()
	params := map[string]string{"user": o.User, "database": o.Database}
	if o.Startup != nil {
		for _, st := range o.Startup.Settings {
			if _, ok := params[st.Name]; !ok { // never the login's own user or database
				params[st.Name] = st.Value
			}
		}
	}
	err := c.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
	if err != nil {
		return err
	}
	login := func() error { return auth.Login(c, o.User, o.Password) }
	if o.Keys != nil {
		login = func() error { return auth.LoginKeys(c, o.User, o.Keys) }
	}
	if err := login(); err != nil {
		return err
	}
	for {
		msg, err := c.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.BackendKeyData:
			c.PID, c.Secret = m.ProcessID, m.SecretKey
		case *pgproto3.ParameterStatus:
			c.setParam(m.Name, m.Value)
		case *pgproto3.ErrorResponse:
			// Errors during startup are always FATAL: the server closes.
			return &ServerError{Response: m}
		case *pgproto3.ReadyForQuery:
			if m.TxStatus != 'I' {
				return fmt.Errorf("server not idle after startup (status %q)", m.TxStatus)
			}
			return c.release()
		}
	}
}
