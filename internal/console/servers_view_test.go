package console

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// SHOW SERVERS keeps PgBouncer's columns in PgBouncer's order (tools
// read them by position), fills application_name and close_needed, and
// shows the LISTEN fan-out's listener with state "listen" and no client.
func TestServersView(t *testing.T) {
	var names []string
	for _, c := range ServerColumns {
		names = append(names, c.Name)
	}
	require.True(t, strings.HasPrefix(strings.Join(names, ","),
		"type,user,database,state,addr,port,local_addr,local_port,connect_time,request_time,wait,wait_us,close_needed,ptr,link,remote_pid,tls,application_name,prepared_statements,id,"))

	snap := sample()
	snap.Servers = append(snap.Servers,
		Server{User: "app", Database: "appdb", State: "listen", PID: 100, AppName: "", CloseNeeded: true},
		Server{User: "app", Database: "appdb", State: "idle", PID: 101, AppName: "report_job"})
	res := servers(snap)
	require.Len(t, res.Rows, 3)
	col := func(row int, name string) any {
		for i, c := range ServerColumns {
			if c.Name == name {
				return res.Rows[row][i]
			}
		}
		t.Fatalf("no column %s", name)
		return nil
	}
	require.Equal(t, "listen", col(1, "state"))
	require.Nil(t, col(1, "link"), "no client holds the listener")
	require.Nil(t, col(1, "client_id"))
	require.Equal(t, true, col(1, "close_needed"))
	require.Equal(t, false, col(0, "close_needed"))
	require.Equal(t, "report_job", col(2, "application_name"))
	decode(t, res.Append(nil))
}
