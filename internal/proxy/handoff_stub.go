package proxy

import (
	"context"
	"errors"
	"os"
)

// Stub of the client side of an upgrade (branch h17-clients owns the real
// one and replaces this file): no client is handed over, so the old
// process drains its clients as a shutdown does.

// HandOffClients hands over no client.
func (s *Server) HandOffClients(ctx context.Context, send func(state []byte, files []*os.File) error) error {
	return nil
}

// AdoptClient adopts no client: it closes what it was given.
func (s *Server) AdoptClient(state []byte, files []*os.File) error {
	for _, f := range files {
		f.Close()
	}
	return errors.New("this sluice adopts no clients")
}

// ClientStateFormat is the version of the client state HandOffClients
// exports and AdoptClient reads; 0: clients are not moved, they drain.
// An upgrade moves clients only between binaries naming the same non-zero
// format.
const ClientStateFormat uint32 = 0
