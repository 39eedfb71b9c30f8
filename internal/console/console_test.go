package console

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"SHOW POOLS", Command{Verb: Show, Arg: "POOLS"}},
		{"  show pools ;  ", Command{Verb: Show, Arg: "POOLS"}},
		{"Show Stats_Totals;", Command{Verb: Show, Arg: "STATS_TOTALS"}},
		{"PAUSE", Command{Verb: Pause}},
		{"pause appdb;", Command{Verb: Pause, Arg: "appdb"}},
		{`PAUSE "My-DB"`, Command{Verb: Pause, Arg: "My-DB"}},
		{`RESUME "a""b"`, Command{Verb: Resume, Arg: `a"b`}},
		{"KILL_CLIENT 42", Command{Verb: KillClient, ClientID: 42}},
		{"DISABLE appdb", Command{Verb: Disable, Arg: "appdb"}},
		{"enable appdb", Command{Verb: Enable, Arg: "appdb"}},
		{"WAIT_CLOSE", Command{Verb: WaitClose}},
		{"RECONNECT appdb", Command{Verb: Reconnect, Arg: "appdb"}},
		{"KILL appdb", Command{Verb: Kill, Arg: "appdb"}},
		{"RELOAD;", Command{Verb: Reload}},
		{"upgrade;", Command{Verb: Upgrade}},
		{"SHUTDOWN", Command{Verb: Shutdown}},
		{"shutdown wait_for_clients", Command{Verb: Shutdown, WaitForClients: true}},
		{"SWITCHOVER appdb", Command{Verb: Switchover, Arg: "appdb"}},
		{"SWITCHOVER appdb TO 10.0.0.2:5432", Command{Verb: Switchover, Arg: "appdb", Host: "10.0.0.2:5432"}},
		{"SET client_encoding = 'UTF8'", Command{Verb: Set, Arg: "client_encoding", Value: "UTF8"}},
		{"set datestyle to ISO", Command{Verb: Set, Arg: "datestyle", Value: "ISO"}},
	} {
		got, ok, err := Parse(tc.in)
		require.NoError(t, err, tc.in)
		require.True(t, ok, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestParseRefusesWithPgBouncersWords(t *testing.T) {
	for _, in := range []string{"SELECT 1", "SHOW", "SHOW POOLS; SHOW STATS", "SHOW POOLS;;", "PAUSE a b",
		"KILL_CLIENT x", "KILL_CLIENT -1", "SHUTDOWN NOW", "UPGRADE now", `PAUSE "unterminated`, "BEGIN", "SHOW pools-x", `"SHOW" POOLS`,
		"SWITCHOVER a FROM b", "SET a", strings.Repeat("x", 5000)} {
		_, ok, err := Parse(in)
		require.False(t, ok, in)
		var ce *Error
		require.ErrorAs(t, err, &ce, in)
		require.Equal(t, CodeInvalidCommand, ce.Code, in)
		require.Contains(t, ce.Msg, "invalid command '", in)
		require.Contains(t, ce.Msg, "use SHOW HELP;", in)
	}
	for _, in := range []string{"DISABLE", "enable;", "SWITCHOVER"} {
		_, ok, err := Parse(in)
		require.False(t, ok, in)
		require.EqualError(t, err, "a database is required", "PgBouncer's words for a command that needs a database: %s", in)
	}
	for _, empty := range []string{"", "  \n ", ";", " ; "} {
		_, ok, err := Parse(empty)
		require.False(t, ok)
		require.NoError(t, err, "an empty query is not an error")
	}
}

func TestReadOnly(t *testing.T) {
	for _, in := range []string{"SHOW POOLS", "SHOW HELP", "SET datestyle = ISO"} {
		c, _, _ := Parse(in)
		require.True(t, c.ReadOnly(), in)
	}
	for _, in := range []string{"PAUSE", "RESUME", "KILL_CLIENT 1", "RELOAD", "SHUTDOWN", "SWITCHOVER a"} {
		c, _, _ := Parse(in)
		require.False(t, c.ReadOnly(), in)
	}
}

// decode reads the messages Append wrote.
func decode(t *testing.T, buf []byte) []pgproto3.BackendMessage {
	t.Helper()
	var out []pgproto3.BackendMessage
	for len(buf) > 0 {
		require.GreaterOrEqual(t, len(buf), 5)
		n := int(buf[1])<<24 | int(buf[2])<<16 | int(buf[3])<<8 | int(buf[4])
		body := buf[5 : 1+n]
		var m pgproto3.BackendMessage
		switch buf[0] {
		case 'T':
			m = &pgproto3.RowDescription{}
		case 'D':
			m = &pgproto3.DataRow{}
		case 'C':
			m = &pgproto3.CommandComplete{}
		case 'N':
			m = &pgproto3.NoticeResponse{}
		case 'E':
			m = &pgproto3.ErrorResponse{}
		default:
			t.Fatalf("unexpected message %q", buf[0])
		}
		require.NoError(t, m.Decode(body))
		out = append(out, m)
		buf = buf[1+n:]
	}
	return out
}

func sample() *Snapshot {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	return &Snapshot{Taken: now, Started: now.Add(-10 * time.Second), Version: "sluice test",
		Pools: []Pool{{Database: "appdb", User: "app", ClActive: 2, ClWaiting: 1, SvActive: 2, SvIdle: 3, MaxWait: 1500 * time.Millisecond,
			PoolMode: "transaction", MaxSize: 20}},
		Clients:   []Client{{ID: 7, User: "app", Database: "appdb", State: "active", Addr: "127.0.0.1", Port: 5000, ConnectTime: now, ServerPID: 99, Pins: []string{"prepare"}}},
		Servers:   []Server{{User: "app", Database: "appdb", State: "active", PID: 99, ClientID: 7, ConnectTime: now}},
		Databases: []Database{{Name: "appdb", Host: "127.0.0.1", Port: 5432, DBName: "appdb", PoolSize: 20, PoolMode: "transaction", Paused: true}},
		Users:     []User{{Name: "app", AuthMethod: "scram-sha-256"}},
		Stats:     []Stats{{Database: "appdb", XactCount: 100, QueryCount: 200, Received: 1000, Sent: 5000, WaitTime: time.Second, Waits: 100}},
		Hosts:     []Host{{Database: "appdb", Host: "a", Role: "primary", Primary: true, Timeline: 1, Reachable: true}},
		Pins:      []Pin{{ClientID: 7, User: "app", Database: "appdb", Reasons: []string{"prepare", "temp_table"}, Since: now.Add(-time.Second)}},
		Config:    []Setting{{Key: "listen.address", Value: "127.0.0.1:6432", Default: "127.0.0.1:6432"}},
		Peers: []Peer{{PeerID: 1, InstanceID: "proxy-1", Address: "10.0.0.21:6432", Version: "dev", Started: now,
			Databases: []string{"appdb", "reports"}, ConfigMatches: true, Self: true},
			{PeerID: 2, InstanceID: "proxy-2", Address: "[fd00::2]:6432", Version: "dev", Started: now,
				Databases: []string{"appdb"}, ConfigDiffers: []string{"databases", "auth"}}},
		Failover: []Failover{{Database: "appdb", Primary: "10.0.0.5:5432", Timeline: 3, Epoch: 4, Done: true, DecidedBy: "proxy-2",
			DecidedAt: now, Leader: "proxy-2", EtcdUp: true, WhyNot: "another instance leads failover for this database: proxy-2"},
			{Database: "reports", EtcdUp: false, WhyNot: "failover is disabled while etcd is unreachable: connecting to etcd"}},
	}
}

func TestFailoverView(t *testing.T) {
	snap := sample()
	res, err := View("FAILOVER", snap)
	require.NoError(t, err)
	require.Equal(t, FailoverColumns, res.Columns)
	require.Equal(t, []any{"appdb", "10.0.0.5:5432", uint32(3), uint64(4), true, "proxy-2", snap.Failover[0].DecidedAt, "proxy-2",
		false, true, false, "another instance leads failover for this database: proxy-2"}, res.Rows[0])
	// No decision yet: NULL primary, decided_by, decided_at and leader.
	msgs := decode(t, res.Append(nil))
	row := msgs[2].(*pgproto3.DataRow).Values
	require.Equal(t, "reports", string(row[0]))
	for _, i := range []int{1, 5, 6, 7} {
		require.Nil(t, row[i], "column %s", res.Columns[i].Name)
	}
	require.Equal(t, "0", string(row[9]), "etcd_up")
	empty, err := View("FAILOVER", &Snapshot{})
	require.NoError(t, err)
	require.Empty(t, empty.Rows, "no cluster: no rows")
}

func TestPeersView(t *testing.T) {
	res, err := View("PEERS", sample())
	require.NoError(t, err)
	require.Equal(t, "peer_id", res.Columns[0].Name)
	require.Equal(t, []any{1, "10.0.0.21", 6432, 0, "proxy-1", "10.0.0.21:6432"}, res.Rows[0][:6])
	require.Equal(t, []any{"appdb,reports", true, "", true}, res.Rows[0][8:])
	require.Equal(t, []any{2, "fd00::2", 6432}, res.Rows[1][:3])
	require.Equal(t, []any{"appdb", false, "databases,auth", false}, res.Rows[1][8:])
	empty, err := View("PEERS", &Snapshot{})
	require.NoError(t, err)
	require.Empty(t, empty.Rows, "no cluster: no peers")
}

func TestEveryViewEncodes(t *testing.T) {
	snap := sample()
	for _, v := range Views {
		res, err := View(v, snap)
		require.NoError(t, err, v)
		msgs := decode(t, res.Append(nil))
		require.IsType(t, &pgproto3.CommandComplete{}, msgs[len(msgs)-1], v)
		require.Equal(t, "SHOW", string(msgs[len(msgs)-1].(*pgproto3.CommandComplete).CommandTag))
		if v == "HELP" {
			require.Contains(t, msgs[0].(*pgproto3.NoticeResponse).Message, "SHOW HELP|")
			continue
		}
		rd := msgs[0].(*pgproto3.RowDescription)
		for _, m := range msgs[1 : len(msgs)-1] {
			require.Len(t, m.(*pgproto3.DataRow).Values, len(rd.Fields), v)
		}
	}
	_, err := View("NOPE", snap)
	require.Equal(t, CodeInvalidCommand, err.(*Error).Code)
	res, err := View("CLIENT_ENCODING", snap)
	require.NoError(t, err)
	require.Equal(t, "UTF8", res.Rows[0][0])
}

// TestPoolsColumnsArePgBouncers pins the exporter-facing names and order.
func TestPoolsColumnsArePgBouncers(t *testing.T) {
	names := func(cs []Column) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name)
		}
		return strings.Join(s, ",")
	}
	require.True(t, strings.HasPrefix(names(PoolColumns),
		"database,user,cl_active,cl_waiting,cl_active_cancel_req,cl_waiting_cancel_req,sv_active,sv_active_cancel,sv_being_canceled,sv_idle,sv_used,sv_tested,sv_login,maxwait,maxwait_us,pool_mode,"))
	require.True(t, strings.HasPrefix(names(StatsColumns),
		"database,total_xact_count,total_query_count,total_received,total_sent,total_xact_time,total_query_time,total_wait_time,avg_xact_count,avg_query_count,avg_recv,avg_sent,avg_xact_time,avg_query_time,avg_wait_time"))
	require.True(t, strings.HasPrefix(names(DatabaseColumns),
		"name,host,port,database,force_user,pool_size,min_pool_size,reserve_pool,pool_mode,max_connections,current_connections,paused,disabled,"))
	require.Equal(t, "list,items", names(ListColumns))
	require.Equal(t, "key,value,default,changeable", names(ConfigColumns))

	res := pools(sample())
	require.Equal(t, []any{"appdb", "app", 2, 1}, res.Rows[0][:4])
	require.Equal(t, 1, res.Rows[0][13], "maxwait seconds")
	require.Equal(t, 500000, res.Rows[0][14], "maxwait_us")
	st := stats(sample())
	require.Equal(t, int64(10), st.Rows[0][8], "avg_xact_count: per second since start")
	require.Equal(t, int64(10000), st.Rows[0][14], "avg_wait_time: microseconds per borrow")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"SHOW POOLS;", `PAUSE "a""b"`, "SET x = 'y''z'", "SWITCHOVER db TO h:1", "KILL_CLIENT 18446744073709551615",
		"SHOW POOLS; SHOW STATS", "'", `"`, "", ";;", "shutdown wait_for_clients", "UPGRADE;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		cmd, ok, err := Parse(q)
		if err != nil {
			require.False(t, ok)
			ce, isCE := err.(*Error)
			require.True(t, isCE)
			require.Equal(t, CodeInvalidCommand, ce.Code)
			require.True(t, utf8.ValidString(ce.Msg))
			require.LessOrEqual(t, len(ce.Msg), 300)
			return
		}
		if !ok {
			require.Empty(t, strings.Trim(q, " \t\n\r;"))
			return
		}
		require.NotEmpty(t, cmd.Verb)
		if cmd.Verb == Show {
			res, verr := View(cmd.Arg, sample())
			if verr == nil {
				decode(t, res.Append(nil))
			}
		}
	})
}
