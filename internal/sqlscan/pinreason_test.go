package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

var wouldPinCases = []struct {
	q    string
	want PinKind
}{
	{"SELECT 1", NoPin},
	{"CREATE TEMP TABLE t (a int)", PinTempTable},
	{"create temporary table t as select 1", PinTempTable},
	{"CREATE GLOBAL TEMP TABLE t (a int)", PinTempTable},
	{"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", PinTempTable},
	{"CREATE TABLE pg_temp.t (a int)", PinTempTable},
	{`CREATE TABLE "pg_temp".t (a int)`, PinTempTable},
	{"SELECT 1 INTO TEMP t", PinTempTable},
	{"CREATE TEMP TABLE t (a int) ON COMMIT DROP", NoPin},
	{"CREATE TEMP TABLE t ON COMMIT DROP AS SELECT 1; SELECT 1", NoPin},
	{"CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS", PinTempTable},
	{"CREATE TEMP TABLE a (x int) ON COMMIT DROP; CREATE TEMP TABLE b (x int)", PinTempTable},
	{"SELECT * FROM pg_temp.t", NoPin},
	{"SELECT 'CREATE TEMP TABLE t'", NoPin},
	{"SELECT pg_advisory_lock(1)", PinAdvisoryLock},
	{"select pg_catalog.PG_TRY_ADVISORY_LOCK_SHARED (1, 2)", PinAdvisoryLock},
	{`SELECT "pg_advisory_lock"(1)`, PinAdvisoryLock},
	{"SELECT pg_advisory_xact_lock(1)", NoPin},
	{"SELECT pg_advisory_unlock(1)", NoPin},
	{"LISTEN ch", PinListen},
	{"SELECT 1; listen ch", PinListen},
	{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", PinHoldCursor},
	{"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", NoPin},
	{"PREPARE p AS SELECT 1; EXECUTE p", PinSQLPrepare},
	{"PREPARE TRANSACTION 'x'", NoPin},
	{"SET ROLE admin", PinRole},
	{"SET SESSION ROLE admin", PinRole},
	{"SET SESSION AUTHORIZATION bob", PinRole},
	{"SET LOCAL ROLE admin", NoPin},
	{"SET ROLE NONE", NoPin},
	{"RESET ROLE", NoPin},
	{"SET search_path = x", NoPin},
	{"LOAD 'auto_explain'", PinLoad},
	{"SELECT U&\"\\0070g_advisory_lock\"(1)", NoPin},
}

func TestWouldPin(t *testing.T) {
	for _, c := range wouldPinCases {
		require.Equal(t, c.want, WouldPin(c.q), "%q", c.q)
		if c.want != NoPin {
			require.NotZero(t, Scan(c.q)&(MayPin|Load|SetsSession), "Scan must flag what WouldPin reports: %q", c.q)
		}
	}
}

// FuzzWouldPin checks that WouldPin never panics, and that whatever it
// reports Scan flags too (it runs only on texts Scan flagged).
func FuzzWouldPin(f *testing.F) {
	for _, c := range wouldPinCases {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if k := WouldPin(q); k != NoPin {
			require.NotZero(t, Scan(q)&(MayPin|Load|SetsSession), "%q: %v", q, k)
		}
	})
}
