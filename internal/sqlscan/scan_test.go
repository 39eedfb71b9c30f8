package sqlscan

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	pin    = MayPin
	unpin  = MayUnpin
	setsS  = SetsSession
	drops  = DropsStatements
	begins = Begins
	lis    = Listens
)

var cases = []struct {
	q    string
	want Effects
}{
	// Nothing.
	{"", 0},
	{"SELECT 1", 0},
	{"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 0},
	{"UPDATE t SET a = 1", 0},
	{"ALTER ROLE app SET search_path = x", 0},
	{"COMMIT; ROLLBACK; END; ABORT", 0},
	{"INSERT INTO t VALUES (1)", 0},
	{"SELECT pg_advisory_xact_lock(1)", 0},
	{"SELECT pg_try_advisory_xact_lock_shared(1)", 0},
	{"SELECT set_config", 0},
	{"CREATE TABLE t (a int)", 0},

	// SET and friends.
	{"SET search_path TO x", setsS},
	{"set search_path = x", setsS},
	{"SeT SeSsIoN statement_timeout = 0", setsS},
	{"SET LOCAL statement_timeout = 0", 0},
	{"set local statement_timeout = 0", 0},
	{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0},
	{"SET CONSTRAINTS ALL DEFERRED", 0},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", setsS},
	{"SET ROLE admin", setsS},
	{"SET SESSION AUTHORIZATION bob", setsS},
	{"SET TIME ZONE 'UTC'", setsS},
	{"SET NAMES 'UTF8'", setsS},
	{"SET SCHEMA 'x'", setsS},
	{"SET local_thing.x = 1", setsS},
	{`SET "local" = 1`, setsS},
	{"SET /* LOCAL */ x = 1", setsS},
	{"SET -- LOCAL\nx = 1", setsS},
	{"SET /* c */ LOCAL x = 1", 0},
	{"RESET ALL", setsS},
	{"reset role", setsS},
	{"SELECT set_config('search_path', 'x', false)", setsS},
	{"SELECT pg_catalog.set_config('a.b', 'c', false)", setsS},
	{"SELECT pg_catalog . SET_CONFIG ('a.b', 'c', false)", setsS},
	{"SELECT set_config /* c */ ('a.b', 'c', false)", setsS},
	{`SELECT "set_config"('a.b', 'c', false)`, setsS},
	{`SELECT "SET_CONFIG"('a.b', 'c', false)`, 0},
	{"(SET x = 1)", setsS}, // not valid SQL: a false positive is fine

	// DISCARD.
	{"DISCARD ALL", setsS | unpin | drops | lis},
	{"discard all;", setsS | unpin | drops | lis},
	{"DISCARD TEMP", unpin},
	{"DISCARD PLANS", unpin},

	// Pinning.
	{"CREATE TEMP TABLE t (a int)", pin},
	{"create temporary table t (a int)", pin},
	{"CREATE GLOBAL TEMPORARY TABLE t (a int)", pin},
	{"CREATE LOCAL TEMP TABLE t (a int)", pin},
	{"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", pin},
	{"CREATE TEMP SEQUENCE s", pin},
	{"CREATE TABLE pg_temp.t (a int)", pin},
	{"CREATE TABLE PG_TEMP.t (a int)", pin},
	{`CREATE TABLE "pg_temp".t (a int)`, pin},
	{`CREATE TABLE "PG_TEMP".t (a int)`, 0},
	{"SELECT * FROM pg_temp_3.t", pin},
	{"SELECT pg_tempo FROM t", 0},
	{"EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1", pin},
	{"SELECT 1 INTO TEMP t", pin},
	{"SELECT 1 INTO TEMPORARY TABLE t", pin},
	{"SELECT 1 INTO LOCAL TEMP t", pin},
	{"SELECT 1 INTO t", 0},
	{"LISTEN chan", pin | lis},
	{"listen \"Chan\"", pin | lis},
	{"SELECT pg_advisory_lock(1)", pin},
	{"SELECT PG_ADVISORY_LOCK_SHARED(1)", pin},
	{"SELECT pg_try_advisory_lock(1, 2)", pin},
	{"SELECT pg_try_advisory_lock_shared (1)", pin},
	{"SELECT pg_catalog.pg_advisory_lock(1)", pin},
	{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", pin},
	{"declare c scroll cursor with hold for select 1", pin},
	{"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", 0},
	{"DECLARE c CURSOR FOR SELECT 1", 0},
	{"DECLARE c CURSOR /* WITH HOLD */ FOR SELECT 1", 0},
	{"SELECT hold FROM t", 0},
	{"PREPARE p AS SELECT 1", pin},
	{"prepare p(int) as select $1", pin},
	{"EXECUTE p", 0},
	{"LOAD 'auto_explain'", pin | Load},

	// Unpinning.
	{"UNLISTEN *", unpin | lis},
	{"SELECT pg_advisory_unlock(1)", unpin},
	{"SELECT pg_advisory_unlock_shared(1)", unpin},
	{"SELECT pg_advisory_unlock_all()", unpin},
	{"DEALLOCATE p", unpin | drops},
	{"DEALLOCATE PREPARE ALL", unpin | drops},
	{"CLOSE c", unpin},
	{"DROP TABLE t", unpin},
	{"SELECT 1; drop table t", unpin},

	// Transactions.
	{"BEGIN", begins},
	{"begin isolation level serializable", begins},
	{"START TRANSACTION", begins},
	{"START", 0},
	{"SELECT 1; BEGIN; SET LOCAL x = 1; COMMIT", begins},
	{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", 0},

	// Statement-leading only.
	{"SELECT listen, unlisten, discard, load, drop, prepare, close, begin FROM t", 0},
	{"SELECT 1 AS set", 0},
	{"((SELECT 1)); LISTEN x", pin | lis},
	{"(((LISTEN x)))", pin | lis},
	{"SELECT (1; LISTEN x)", 0}, // ';' inside parentheses does not split
	{";;; LISTEN x", pin | lis},
	{"SELECT 1; /* c */ -- d\n LISTEN x", pin | lis},
	{"SELECT 1--2; LISTEN x", 0},
	{"SELECT 1+/*; LISTEN x */2", 0},

	// Multi-statement.
	{"SET x = 1; LISTEN y; DISCARD TEMP; BEGIN", setsS | pin | unpin | begins | lis},
	{"SELECT 1;SET x=1", setsS},
	{"DISCARD ALL; LOAD 'x'; BEGIN; LISTEN a", all},

	// Nothing inside strings, comments, quoted identifiers, dollar quotes.
	{"SELECT 'SET x'", 0},
	{"SELECT 'a;SET x = 1'", 0},
	{"SELECT 'it''s; LISTEN x'", 0},
	{"SELECT 1 -- LISTEN x", 0},
	{"SELECT 1 -- x\n; LISTEN x", pin | lis},
	{"SELECT 1 -- x\r; LISTEN x", pin | lis},
	{"/* SET x = 1 */ SELECT 1", 0},
	{"/* outer /* inner */ ; LISTEN x */ SELECT 1", 0},
	{"/* outer /* inner */ still */ LISTEN x", pin | lis},
	{"SELECT $$; SET x = 1$$", 0},
	{"SELECT $tag$ $$; SET x = 1 $$ $tag$", 0},
	{"SELECT $a$ x $A$; LISTEN y $a$", 0},
	{"SELECT $1; LISTEN x", pin | lis},
	{"SELECT a$$b; LISTEN x", pin | lis},
	{"SELECT $a; LISTEN x", pin | lis},
	{"SELECT 'pg_advisory_lock(1)', \"x;LISTEN y\"", 0},
	{`SELECT "pg_advisory_lock"(1)`, pin},
	{`SELECT 1 AS "set"; SELECT "a""b; LISTEN x"`, 0},
	{`SELECT E'\''; LISTEN x`, pin | lis},
	{`SELECT E'\'; LISTEN x'`, 0},
	{`SELECT e'\\'; LISTEN x`, pin | lis},
	{`SELECT xe'\'; LISTEN x`, pin | lis}, // xe is an identifier: a plain '\' string
	{`SELECT '\'; LISTEN x`, pin | lis},   // standard_conforming_strings
	{`SELECT U&'d\0061t\+000061; LISTEN x'`, 0},
	{`SELECT U&"pg_temp".t`, pin},
	{`SELECT U&"pg\005ftemp".t`, SetsSession | pin | unpin},
	{`SELECT U&"pg!005ftemp" UESCAPE '!'`, SetsSession | pin | unpin},
	{`SELECT B'01'; LISTEN x`, pin | lis},
	{`SELECT X'1f'`, 0},

	// Malformed input stops.
	{"SELECT 'unterminated; LISTEN x", 0},
	{"LISTEN x; SELECT 'unterminated", pin | lis},
	{"SELECT /* unterminated; LISTEN x", 0},
	{"SELECT $$ unterminated; LISTEN x", 0},
	{`SELECT "unterminated; LISTEN x`, 0},
	{`SELECT E'\`, 0},
	{"SET", setsS},
	{")))); LISTEN x", pin | lis},
}

func TestScan(t *testing.T) {
	for _, c := range cases {
		require.Equal(t, c.want.String(), Scan(c.q).String(), "%q", c.q)
	}
}

func TestScanIsAllocationFree(t *testing.T) {
	for _, q := range append(benchQueries[:], "DISCARD ALL; LOAD 'x'; BEGIN; LISTEN a", `SELECT U&"x" UESCAPE '!'`) {
		require.Zero(t, testing.AllocsPerRun(100, func() { Scan(q) }), "%q", q)
	}
}

func TestEffectsString(t *testing.T) {
	require.Equal(t, "", Effects(0).String())
	require.Equal(t, "SetsSession|MayPin", (SetsSession | MayPin).String())
	require.Equal(t, "SetsSession|MayPin|MayUnpin|Load|DropsStatements|Begins|Listens", all.String())
	require.Equal(t, "Begins|0x100", (Begins | 1<<8).String())
}
