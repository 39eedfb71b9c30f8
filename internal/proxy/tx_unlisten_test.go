package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/testutil/pgtest"
)

// An UNLISTEN in transaction mode takes effect only if its transaction
// commits, as in PostgreSQL (txcore's listens.go). Each test has a
// client listen to a channel and to a sentinel, then run what may
// unlisten the channel; another client then notifies the channel and
// then the sentinel: the first notification the listening client gets
// says whether it still listens to the channel, without waiting for one
// that may never come.

// unlistenCase connects a client listening to ch and to a sentinel; the
// function it returns notifies both from another client and returns
// the payload of the first notification ("channel" or "sentinel").
func unlistenCase(t *testing.T, ch string) (*listener, func() string) {
	t.Helper()
	h := start(t, txPool(2))
	a := connectListening(t, h)
	simple(t, a.PgConn, "LISTEN "+ch+"; LISTEN tx_unlisten_sentinel")
	b := h.connect(context.Background())
	first := func() string {
		t.Helper()
		simple(t, b, "NOTIFY "+ch+", 'channel'")
		simple(t, b, "NOTIFY tx_unlisten_sentinel, 'sentinel'")
		got := nextNotification(t, a).Payload
		if got == "channel" {
			require.Equal(t, "sentinel", nextNotification(t, a).Payload)
		}
		return got
	}
	return a, first
}

// BEGIN; UNLISTEN ch; ROLLBACK leaves the client listening to ch, and
// so does COMMIT of a block that failed (its CommandComplete says
// ROLLBACK).
func TestTxUnlistenRolledBackKeepsListening(t *testing.T) {
	a, first := unlistenCase(t, "tx_unlisten_rb")
	simple(t, a.PgConn, "BEGIN")
	simple(t, a.PgConn, "UNLISTEN tx_unlisten_rb")
	simple(t, a.PgConn, "ROLLBACK")
	require.Equal(t, "channel", first(), "a rolled-back UNLISTEN changes nothing")

	simple(t, a.PgConn, "BEGIN")
	simple(t, a.PgConn, "UNLISTEN *")
	_, err := a.Exec(context.Background(), "SELECT 1/0").ReadAll()
	require.Equal(t, "22012", pgErr(t, err).Code)
	simple(t, a.PgConn, "COMMIT")
	require.Equal(t, "channel", first(), "COMMIT of a failed block rolls back")
}

// A committed UNLISTEN stops the channel.
func TestTxUnlistenCommittedStops(t *testing.T) {
	a, first := unlistenCase(t, "tx_unlisten_commit")
	simple(t, a.PgConn, "BEGIN")
	simple(t, a.PgConn, "UNLISTEN tx_unlisten_commit")
	simple(t, a.PgConn, "COMMIT")
	require.Equal(t, "sentinel", first())
}

// UNLISTEN ch; SELECT 1/0 sent as one Query is one implicit transaction,
// which the error rolls back: the client still listens to ch.
func TestTxUnlistenFailedImplicitTransaction(t *testing.T) {
	a, first := unlistenCase(t, "tx_unlisten_implicit")
	_, err := a.Exec(context.Background(), "UNLISTEN tx_unlisten_implicit; SELECT 1/0").ReadAll()
	require.Equal(t, "22012", pgErr(t, err).Code)
	require.Equal(t, "channel", first(), "the failed implicit transaction's UNLISTEN changes nothing")
}

// pgx's Tx with its default protocol (Parse, Bind, Execute): an
// UNLISTEN in a transaction rolled back with tx.Rollback changes
// nothing.
func TestTxUnlistenPgxRollback(t *testing.T) {
	h := start(t, txPool(2))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.dsn(pgtest.AppUser, pgtest.AppPassword))
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, sql := range []string{"listen tx_unlisten_pgx", "listen tx_unlisten_sentinel"} {
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "unlisten tx_unlisten_pgx")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	other := h.connect(ctx)
	simple(t, other, "NOTIFY tx_unlisten_pgx, 'channel'")
	simple(t, other, "NOTIFY tx_unlisten_sentinel, 'sentinel'")
	wctx, cancel := context.WithTimeout(ctx, time.Minute) // a guard against a hang
	defer cancel()
	var n *pgconn.Notification
	n, err = conn.WaitForNotification(wctx)
	require.NoError(t, err)
	require.Equal(t, "channel", n.Payload, "the rolled-back UNLISTEN changed nothing")
}
