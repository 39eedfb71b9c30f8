package proxy

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/metrics"
	"github.com/sluice-proxy/sluice/internal/wire"
)

func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	return a, c
}

// BenchmarkRelayDataRows relays batches of 100 DataRows from a fake server
// socket to a fake client socket through the session relay. One op is one
// batch; allocs/op must be 0: rows are framed, never decoded or copied.
func BenchmarkRelayDataRows(b *testing.B) {
	srvSide, relaySrv := tcpPair(b)
	relayCli, cliSide := tcpPair(b)
	var batch []byte
	for range 100 {
		batch, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("42"), []byte("a row of text, about sixty bytes long, as pgbench -S returns")}}).Encode(batch)
	}
	r := &relay{client: relayCli, server: relaySrv, bufs: wire.NewBuffers(8192),
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		bytesUp: func(int) {}, bytesDown: func(int) {}}
	done := make(chan struct{})
	go func() { r.run(); close(done) }()
	sink := make([]byte, len(batch))
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srvSide.Write(batch); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(cliSide, sink); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cliSide.Close()
	srvSide.Close()
	<-done
	relayCli.Close()
	relaySrv.Close()
}

// BenchmarkRelayRoundTrip relays a session-mode round trip (a Query up,
// a ReadyForQuery down) with the pool's metrics attached: the query and
// transaction counters and the query-duration histogram. One op is one
// round trip; allocs/op must be 0.
func BenchmarkRelayRoundTrip(b *testing.B) {
	srvSide, relaySrv := tcpPair(b)
	relayCli, cliSide := tcpPair(b)
	q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	z, _ := (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(nil)
	r := &relay{client: relayCli, server: relaySrv, bufs: wire.NewBuffers(8192),
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		bytesUp: func(int) {}, bytesDown: func(int) {}, stats: metrics.New(nil).Pool("appdb", "app")}
	r.txStatus.Store('I')
	done := make(chan struct{})
	go func() { r.run(); close(done) }()
	gotQ, gotZ := make([]byte, len(q)), make([]byte, len(z))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cliSide.Write(q); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(srvSide, gotQ); err != nil {
			b.Fatal(err)
		}
		if _, err := srvSide.Write(z); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(cliSide, gotZ); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cliSide.Close()
	srvSide.Close()
	<-done
	relayCli.Close()
	relaySrv.Close()
}
