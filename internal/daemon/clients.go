package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sluice-proxy/sluice/internal/handoff"
)

// The clients' part of an upgrade, both ends. Each client is one Client
// message answered by one Adopted message, so that the old process knows
// for each whether the new one took it: send returns nil only once
// AdoptClient returned nil there; any error means the new process does not
// have the client and the old one still owns it (serves or drains it).

// clientSender is the send func given to ClientMover.HandOffClients on
// the old process; the answers come from r, which reads the socket. It
// may be called from several goroutines; one client is in flight at a
// time. The files stay the caller's.
func clientSender(ctx context.Context, conn *handoff.Conn, r *handOffReader) func(state []byte, files []*os.File) error {
	var mu sync.Mutex
	return func(state []byte, files []*os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			conn.SetWriteDeadline(dl)
		}
		if err := conn.Send(handoff.KindClient, state, files...); err != nil {
			return err
		}
		var a handOffAnswer
		var ok bool
		select {
		case a, ok = <-r.answers:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the new process to adopt a client: %w", ctx.Err())
		}
		switch {
		case !ok:
			return errors.New("waiting for the new process to adopt a client: the hand-off socket ended")
		case a.kind != handoff.KindAdopted:
			return fmt.Errorf("the new process answered a client with %s", a.kind)
		}
		return handoff.DecodeAdopted(a.payload)
	}
}

// adoptClients is the new process's end: it adopts each client sent
// until Done or the end of the socket, answering each. It returns how
// many it adopted and refused, and why it stopped when that was not Done.
func adoptClients(conn *handoff.Conn, mover ClientMover) (adopted, refused int, err error) {
	for {
		kind, payload, files, err := conn.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil // the old process ended (it sends Done first when it can)
			}
			return adopted, refused, err
		}
		if kind != handoff.KindClient {
			closeFiles(files)
			if kind == handoff.KindDone {
				return adopted, refused, nil
			}
			return adopted, refused, fmt.Errorf("unexpected %s message among clients", kind)
		}
		aerr := mover.AdoptClient(payload, files) // owns files from here on
		if aerr != nil {
			refused++
		} else {
			adopted++
		}
		if err := conn.Send(handoff.KindAdopted, handoff.EncodeAdopted(aerr)); err != nil {
			return adopted, refused, err
		}
	}
}
