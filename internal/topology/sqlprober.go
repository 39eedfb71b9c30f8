package topology

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
)

// Prober finds out what a server is. The Monitor calls Probe for a host
// from one goroutine at a time, with a context bounded by the probe
// timeout. An error that wraps *backend.ServerError means the server
// answered (for example "the database system is starting up"); any other
// error means it did not, which is what automatic promotion waits for.
type Prober interface {
	Probe(ctx context.Context, h Host) (Observation, error)
	// Promote asks a standby to leave recovery and waits until it has (or
	// ctx ends).
	Promote(ctx context.Context, h Host) error
}

// DialFunc opens a logged-in server connection to h.
type DialFunc func(ctx context.Context, h Host) (*backend.Conn, error)

// BackendDialer returns a DialFunc that dials with backend.Dial and the
// options opts gives for a host, the same TLS, login and timeouts as the
// pools use, but with a single attempt: a probe that fails is simply
// repeated one interval later, and must not sit in a backoff.
func BackendDialer(opts func(h Host) backend.Options) DialFunc {
	return func(ctx context.Context, h Host) (*backend.Conn, error) {
		o := opts(h)
		o.Retries, o.Wait = 0, nil
		return backend.Dial(ctx, o)
	}
}

// SQLProber probes with SQL over one dedicated connection per host, kept
// open between probes and replaced when it fails. Its login needs
// pg_monitor (pg_ls_waldir(), pg_stat_wal_receiver's details;
// PostgreSQL checks them on a primary too) and, for Promote, EXECUTE on
// pg_promote in the database it connects to; a superuser has both. Without
// them every probe fails with "permission denied", which counts as an
// answer, so such a host is never reachable and blocks automatic promotion.
type SQLProber struct {
	dial DialFunc

	mu     sync.Mutex
	conns  map[string]*backend.Conn // by Host.Name; absent while a probe uses it
	closed bool
}

// NewSQLProber returns a prober that opens its connections with dial.
func NewSQLProber(dial DialFunc) *SQLProber {
	return &SQLProber{dial: dial, conns: map[string]*backend.Conn{}}
}

// probeSQL reads everything in one round trip. pg_is_in_recovery() is
// evaluated once (OFFSET 0 keeps the subquery from being flattened), so the
// branches agree with the role reported. Timeline: on a primary the first 8
// hex digits of the current WAL file name, i.e. GetWALInsertionTimeLine(),
// which is the new timeline from the moment pg_is_in_recovery() turns
// false; pg_control_checkpoint().timeline_id would keep the old one until
// the checkpoint that follows promotion. On a standby the walreceiver's
// received_tli, or, when it is not streaming, its last restartpoint's
// timeline. On a standby there is no exact figure: the walreceiver's
// received_tli while it streams, its last restartpoint's timeline (which
// lags), and the newest timeline among the WAL and history files in pg_wal
// (a standby that followed a timeline switch fetched its history file); the
// highest of the three. pg_stat_wal_receiver's details and pg_ls_waldir()
// need pg_monitor.
const probeSQL = `SELECT r,
	CASE WHEN r THEN greatest((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver),
		(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()),
		(SELECT max(('x' || substr(name, 1, 8))::bit(32)::bigint) FROM pg_catalog.pg_ls_waldir()
			WHERE name ~ '^[0-9A-F]{8}([0-9A-F]{16}|\.history)$'))
	ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_flush_lsn()), 1, 8))::bit(32)::bigint END,
	CASE WHEN r THEN NULL ELSE pg_catalog.pg_current_wal_flush_lsn() END,
	pg_catalog.pg_last_wal_receive_lsn(),
	pg_catalog.pg_last_wal_replay_lsn(),
	CASE WHEN r THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END
FROM (SELECT pg_catalog.pg_is_in_recovery() AS r OFFSET 0) s`

// Probe runs probeSQL on h's connection, dialling one first if needed. A
// kept connection that fails (it may have been closed while idle, e.g. by
// a restart that left a FATAL message waiting in it) is replaced once
// within the same probe.
func (p *SQLProber) Probe(ctx context.Context, h Host) (Observation, error) {
	c, reused, err := p.take(ctx, h)
	if err != nil {
		return Observation{}, err
	}
	rows, err := query(ctx, c, probeSQL)
	if err != nil && reused && ctx.Err() == nil {
		c.Close()
		if c, err = p.dial(ctx, h); err != nil {
			return Observation{}, err
		}
		rows, err = query(ctx, c, probeSQL)
	}
	if err != nil {
		c.Close()
		return Observation{}, err
	}
	p.give(h, c)
	obs, err := parseProbe(rows)
	if err != nil {
		return Observation{}, fmt.Errorf("probe of %s: %w", h.Name, err)
	}
	return obs, nil
}

// take returns h's kept connection (reused) or dials a new one.
func (p *SQLProber) take(ctx context.Context, h Host) (*backend.Conn, bool, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errors.New("topology: prober closed")
	}
	c := p.conns[h.Name]
	delete(p.conns, h.Name)
	p.mu.Unlock()
	if c != nil {
		return c, true, nil
	}
	c, err := p.dial(ctx, h)
	return c, false, err
}

// give keeps c for h's next probe.
func (p *SQLProber) give(h Host, c *backend.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.conns[h.Name] != nil {
		c.Close()
		return
	}
	p.conns[h.Name] = c
}

// Forget closes h's kept connection (the host left the configuration).
func (p *SQLProber) Forget(h Host) {
	p.mu.Lock()
	c := p.conns[h.Name]
	delete(p.conns, h.Name)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Close closes every kept connection; later probes fail.
func (p *SQLProber) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = map[string]*backend.Conn{}, true
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// Promote runs pg_promote(true, n) on a fresh connection to h, n being the
// seconds left before ctx's deadline (60 without one). PostgreSQL then
// waits for the promotion to finish and answers false if it did not in time.
func (p *SQLProber) Promote(ctx context.Context, h Host) error {
	c, err := p.dial(ctx, h)
	if err != nil {
		return err
	}
	defer c.Close()
	secs := 60
	if dl, ok := ctx.Deadline(); ok {
		secs = max(1, int(math.Ceil(time.Until(dl).Seconds())))
	}
	rows, err := query(ctx, c, "SELECT pg_catalog.pg_promote(true, "+strconv.Itoa(secs)+")")
	if err != nil {
		return err
	}
	if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil || *rows[0][0] != "t" {
		return fmt.Errorf("%s did not finish promotion within %ds", h.Name, secs)
	}
	return nil
}

// answered reports whether err is an answer from the server itself.
func answered(err error) bool {
	var se *backend.ServerError
	return errors.As(err, &se)
}

// query runs one simple-protocol query and returns its rows as text (nil
// for NULL). An ErrorResponse is returned as *backend.ServerError once the
// server is ready again, so the connection stays usable.
func query(ctx context.Context, c *backend.Conn, sql string) ([][]*string, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		stop()
		c.SetDeadline(time.Time{})
	}()
	if err := c.Send(&pgproto3.Query{String: sql}); err != nil {
		return nil, ctxErr(ctx, err)
	}
	var rows [][]*string
	var srvErr *pgproto3.ErrorResponse
	for {
		msg, err := c.Receive()
		if err != nil {
			if srvErr != nil { // a FATAL error, then the server closed
				return nil, &backend.ServerError{Response: srvErr}
			}
			return nil, ctxErr(ctx, err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row := make([]*string, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					s := string(v)
					row[i] = &s
				}
			}
			rows = append(rows, row)
		case *pgproto3.ErrorResponse:
			if srvErr == nil {
				srvErr = m
			}
		case *pgproto3.ReadyForQuery:
			if srvErr != nil {
				return nil, &backend.ServerError{Response: srvErr}
			}
			return rows, nil
		}
	}
}

// ctxErr prefers ctx's error to the timeout it caused on the socket.
func ctxErr(ctx context.Context, err error) error {
	var ne net.Error
	if ctx.Err() != nil && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

func parseProbe(rows [][]*string) (Observation, error) {
	if len(rows) != 1 || len(rows[0]) != 6 {
		return Observation{}, fmt.Errorf("unexpected probe result shape")
	}
	r := rows[0]
	var o Observation
	var err error
	if r[0] == nil || r[1] == nil {
		return o, errors.New("probe returned NULL recovery state or timeline")
	}
	o.InRecovery = *r[0] == "t"
	tli, err := strconv.ParseUint(*r[1], 10, 32)
	if err != nil {
		return o, fmt.Errorf("timeline %q: %w", *r[1], err)
	}
	o.Timeline = uint32(tli)
	for i, dst := range []*LSN{&o.FlushLSN, &o.ReceiveLSN, &o.ReplayLSN} {
		if v := r[2+i]; v != nil {
			if *dst, err = ParseLSN(*v); err != nil {
				return o, err
			}
		}
	}
	o.ReplayPaused = r[5] != nil && *r[5] == "t"
	return o, nil
}
