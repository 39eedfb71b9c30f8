package backend

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Cancel asks the server to cancel whatever the backend pid is running,
// on a new connection, as the protocol requires.
func Cancel(ctx context.Context, network, address string, pid uint32, secret []byte) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer nc.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := nc.Write(buf); err != nil {
		return err
	}
	// The server closes the connection when done; wait briefly for that so
	// the cancel is delivered before we return.
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	nc.Read(b[:])
	return nil
}
