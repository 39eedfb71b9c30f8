package proxy_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// pipelineRows reads the next pipeline result, which must be a query's,
// and returns its rows as text (or its error).
func pipelineRows(t *testing.T, p *pgconn.Pipeline) ([][]string, error) {
	t.Helper()
	r, err := p.GetResults()
	if err != nil {
		return nil, err
	}
	rr, ok := r.(*pgconn.ResultReader)
	require.True(t, ok, "want a query result, got %T", r)
	res := rr.Read()
	var out [][]string
	for _, row := range res.Rows {
		var cols []string
		for _, v := range row {
			cols = append(cols, string(v))
		}
		out = append(out, cols)
	}
	return out, res.Err
}

func pipelineSync(t *testing.T, p *pgconn.Pipeline) {
	t.Helper()
	r, err := p.GetResults()
	require.NoError(t, err)
	require.IsType(t, &pgconn.PipelineSync{}, r)
}

// A pgconn pipeline of seven Syncs sent at once, with a prepared
// statement, an error, and a transaction over two Syncs: every result
// arrives, in order, and the only server connection goes to a second
// client, which starts waiting while the pipeline runs, only after the
// last ReadyForQuery. A sequence orders what ran on the server: the
// second client's number is after every one of the pipeline's.
func TestTxPipelineOfSyncsKeepsTheConnectionToTheLastReadyForQuery(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	query(t, a, "DROP TABLE IF EXISTS tx_pipe")
	query(t, a, "DROP SEQUENCE IF EXISTS tx_pipe_seq")
	query(t, a, "CREATE SEQUENCE tx_pipe_seq")
	query(t, a, "CREATE TABLE tx_pipe(n bigint)")
	defer query(t, a, "DROP SEQUENCE tx_pipe_seq")
	defer query(t, a, "DROP TABLE tx_pipe")

	// The minute turns a pipeline whose answers went elsewhere into an
	// error instead of a hang; it is not a measured limit.
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p := a.StartPipeline(pctx)
	p.SendQueryParams("SELECT nextval('tx_pipe_seq'), pg_sleep(0.1)", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendPrepare("tx_pipe_double", "SELECT $1::int * 2", nil)
	p.SendQueryPrepared("tx_pipe_double", [][]byte{[]byte("21")}, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT nextval('tx_pipe_seq'), pg_sleep(0.3)", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
	p.SendQueryParams("SELECT 'skipped after the error'", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT nextval('tx_pipe_seq')", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("BEGIN", nil, nil, nil, nil)
	p.SendQueryParams("INSERT INTO tx_pipe SELECT nextval('tx_pipe_seq')", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT nextval('tx_pipe_seq'), pg_sleep(0.1)", nil, nil, nil, nil)
	p.SendQueryParams("COMMIT", nil, nil, nil, nil)
	p.SendPipelineSync()
	require.NoError(t, p.Flush())

	var seen []int
	seq := func(rows [][]string, err error) {
		t.Helper()
		require.NoError(t, err)
		require.Len(t, rows, 1)
		n, err := strconv.Atoi(rows[0][0])
		require.NoError(t, err)
		seen = append(seen, n)
	}
	seq(pipelineRows(t, p))
	// a holds the connection now; b asks for it while a's pipeline runs.
	waiting := startWaiting(t, b, "SELECT nextval('tx_pipe_seq') || ' b'")
	pipelineSync(t, p)

	r, err := p.GetResults()
	require.NoError(t, err)
	require.IsType(t, &pgconn.StatementDescription{}, r)
	rows, err := pipelineRows(t, p)
	require.NoError(t, err)
	require.Equal(t, [][]string{{"42"}}, rows)
	pipelineSync(t, p)

	seq(pipelineRows(t, p))
	pipelineSync(t, p)

	_, err = pipelineRows(t, p)
	require.Equal(t, "22012", pgCode(err), "%v", err)
	pipelineSync(t, p) // pgconn drops the skipped query's request itself

	seq(pipelineRows(t, p))
	pipelineSync(t, p)

	_, err = pipelineRows(t, p) // BEGIN
	require.NoError(t, err)
	_, err = pipelineRows(t, p) // INSERT
	require.NoError(t, err)
	pipelineSync(t, p)

	seq(pipelineRows(t, p))
	_, err = pipelineRows(t, p) // COMMIT
	require.NoError(t, err)
	pipelineSync(t, p)
	require.NoError(t, p.Close())
	require.Equal(t, byte('I'), a.TxStatus())

	got := awaitResult(t, waiting)
	require.Len(t, got, 1)
	var bn int
	_, err = fmt.Sscanf(got[0], "%d b", &bn)
	require.NoError(t, err, "b got %q", got)
	inserted := query(t, a, "SELECT n FROM tx_pipe")
	require.Len(t, inserted, 1, "the transaction over two Syncs committed")
	in, err := strconv.Atoi(inserted[0])
	require.NoError(t, err)
	require.Len(t, seen, 4)
	seen = []int{seen[0], seen[1], seen[2], in, seen[3]} // the INSERT ran between the last two
	for i := 1; i < len(seen); i++ {
		require.Less(t, seen[i-1], seen[i], "a's pipeline ran in order: %v", seen)
	}
	require.Greater(t, bn, seen[len(seen)-1], "b ran in the middle of a's pipeline: a %v, b %d", seen, bn)
}

// slowRows is a COPY source that gives its lines in chunks, pausing
// before each, and reports when the first chunk was taken.
type slowRows struct {
	chunks  [][]byte
	started chan struct{}
}

func (s *slowRows) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	if s.started != nil {
		close(s.started)
		s.started = nil
	} else {
		time.Sleep(50 * time.Millisecond)
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// COPY FROM STDIN inside BEGIN ... COMMIT on a pool of one connection:
// a second client that asks while the data is streaming waits through
// the COPY and up to the COMMIT, then sees every row.
func TestTxCopyInsideTransactionHoldsTheConnection(t *testing.T) {
	h := start(t, txPool(1))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	query(t, a, "DROP TABLE IF EXISTS tx_copy_tx")
	query(t, a, "CREATE TABLE tx_copy_tx(n int)")
	// A cleanup, not a defer: it must run after the copying goroutine,
	// which uses a too, has ended (cleanups run after defers, last first).
	t.Cleanup(func() { query(t, a, "DROP TABLE tx_copy_tx") })

	src := &slowRows{started: make(chan struct{})}
	for c := range 10 {
		var chunk []byte
		for i := range 100 {
			chunk = fmt.Appendf(chunk, "%d\n", c*100+i+1)
		}
		src.chunks = append(src.chunks, chunk)
	}
	started := src.started
	query(t, a, "BEGIN")
	copied := make(chan error, 1)
	copyDone := make(chan struct{})
	copyCtx := t.Context() // ends a test that stopped early's COPY
	go func() {
		defer close(copyDone)
		tag, err := a.CopyFrom(copyCtx, src, "COPY tx_copy_tx FROM STDIN")
		if err == nil && tag.RowsAffected() != 1000 {
			err = fmt.Errorf("COPY %d", tag.RowsAffected())
		}
		copied <- err
	}()
	t.Cleanup(func() { <-copyDone }) // a is not safe for concurrent use
	<-started
	waiting := startWaiting(t, b, "SELECT count(*) || ' ' || sum(n) FROM tx_copy_tx")
	requireStillWaiting(t, h, waiting, "a is copying inside a transaction")
	require.NoError(t, <-copied)
	require.Equal(t, byte('T'), a.TxStatus())
	requireStillWaiting(t, h, waiting, "a's COPY is done but its transaction is open")
	require.Equal(t, []string{"1000"}, query(t, a, "SELECT count(*) FROM tx_copy_tx"))
	query(t, a, "COMMIT")
	require.Equal(t, []string{"1000 500500"}, awaitResult(t, waiting), "b ran after the COMMIT, on the same connection, unmixed")
}
