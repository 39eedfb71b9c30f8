package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// relay forwards one session's bytes in both directions until either side
// ends. It owns two named loops, clientToServer (run by the session
// goroutine) and serverToClient (its own goroutine); each is the only
// writer to its destination. Bytes are forwarded as read; a wire.Scanner
// finds message boundaries so the relay can tell whether the server
// connection is left at a clean point, without decoding any row.
type relay struct {
	client, server net.Conn
	bufs           *wire.Buffers
	log            *slog.Logger
	bytesUp        func(int) // metrics hooks, called once per chunk
	bytesDown      func(int)

	// Set by clientToServer, read after both loops stop.
	up         wire.Scanner
	lastUp     byte  // type of the last complete client message other than Terminate
	expectZ    int64 // ReadyForQuery messages the server owes (one per Query, Sync, FunctionCall)
	terminated bool  // the client said goodbye with Terminate

	// Set by serverToClient.
	down     wire.Scanner
	gotZ     atomic.Int64
	txStatus atomic.Uint32 // status byte of the last ReadyForQuery

	// stopping is set when the session is being ended from outside
	// (shutdown) or by the other loop, so errors it causes are expected.
	stopping atomic.Bool
	// shutdown is set when sluice itself is ending the session.
	shutdown atomic.Bool
	// upDone is closed when clientToServer has returned.
	upDone   chan struct{}
	closeMu  sync.Mutex
	upErr    error
	downErr  error
	bytesIn  int64
	bytesOut atomic.Int64
}

// clean reports, after both loops stopped, whether the server connection
// is between messages with every answer delivered: then it can be reset
// and reused. Otherwise it must be closed.
func (r *relay) clean() bool {
	switch r.lastUp {
	case 0, 'Q', 'S', 'F':
	default:
		return false
	}
	return r.up.AtBoundary() && r.down.AtBoundary() && r.gotZ.Load() == r.expectZ
}

// run relays until the client leaves or either connection fails.
func (r *relay) run() {
	r.upDone = make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.downErr = r.serverToClient()
		if !r.stopping.Swap(true) {
			// The server side ended first: stop reading from the client.
			r.client.SetReadDeadline(time.Unix(1, 0))
		}
	}()
	r.upErr = r.clientToServer()
	close(r.upDone)
	if !r.stopping.Swap(true) {
		// The client side ended first: wake serverToClient. If the server
		// owes nothing, it is parked waiting for bytes and the deadline
		// ends that wait without losing anything.
		r.server.SetReadDeadline(time.Unix(1, 0))
	}
	<-done
	r.server.SetReadDeadline(time.Time{})
	r.client.SetReadDeadline(time.Time{})
}

// clientToServer forwards client bytes to the server and stops at the
// client's Terminate, which is not forwarded: the server connection lives on.
func (r *relay) clientToServer() error {
	for {
		if err := wire.WaitReadable(r.client); err != nil && err != wire.ErrNoRawConn {
			return err
		}
		bp := r.bufs.Get()
		n, err := r.client.Read(*bp)
		if n > 0 {
			chunk := (*bp)[:n]
			end := n
			scanErr := r.up.Scan(chunk, 0, func(typ byte, _ uint32, _ byte, at int) {
				if r.terminated {
					return
				}
				switch typ {
				case 'X':
					// Nothing may follow Terminate; drop it and the rest.
					r.terminated = true
					end = at - wire.HeaderLen
					if end < 0 {
						// Part of it went out with the previous chunk: the
						// server connection is no longer at a boundary.
						r.lastUp, end = 'X', 0
					}
				case 'Q', 'S', 'F':
					r.expectZ++
					r.lastUp = typ
				default:
					r.lastUp = typ
				}
			})
			if scanErr == nil && end > 0 {
				_, werr := r.server.Write(chunk[:end])
				r.bytesIn += int64(end)
				r.bytesUp(end)
				if werr != nil {
					scanErr = werr
				}
			}
			r.bufs.Put(bp)
			if scanErr != nil {
				return scanErr
			}
			if r.terminated {
				return nil
			}
		} else {
			r.bufs.Put(bp)
		}
		if err != nil {
			return err
		}
	}
}

// serverToClient forwards server bytes to the client, noting each
// ReadyForQuery's transaction status.
func (r *relay) serverToClient() error {
	debug := r.log.Enabled(context.Background(), slog.LevelDebug)
	visit := func(typ byte, _ uint32, first byte, _ int) {
		if typ == 'Z' {
			r.txStatus.Store(uint32(first))
			r.gotZ.Add(1)
		}
	}
	for {
		if err := wire.WaitReadable(r.server); err != nil && err != wire.ErrNoRawConn {
			return err
		}
		bp := r.bufs.Get()
		n, err := r.server.Read(*bp)
		if n > 0 {
			chunk := (*bp)[:n]
			if debug {
				r.log.Debug("Received data from database", "length", n,
					"local", r.server.LocalAddr().String(), "remote", r.server.RemoteAddr().String())
			}
			scanErr := r.down.Scan(chunk, 0, visit)
			if scanErr == nil {
				_, scanErr = r.client.Write(chunk)
				r.bytesOut.Add(int64(n))
				r.bytesDown(n)
			}
			r.bufs.Put(bp)
			if scanErr != nil {
				return scanErr
			}
		} else {
			r.bufs.Put(bp)
		}
		if err != nil {
			return err
		}
	}
}

// isTimeout reports whether err is the deadline we set to stop a loop.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
