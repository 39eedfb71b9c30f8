package console

// Column lists. Where a column means what PgBouncer's (1.18 and later)
// of the same name means, it has its name and place, so that
// pgbouncer_exporter and people's scripts read sluice unchanged; sluice's
// own columns come after. Columns sluice has no value for are 0 or NULL,
// as PgBouncer shows a feature that is not in use (docs/operations.md).
var (
	PoolColumns = cols("database:s", "user:s", "cl_active:i", "cl_waiting:i", "cl_active_cancel_req:i", "cl_waiting_cancel_req:i",
		"sv_active:i", "sv_active_cancel:i", "sv_being_canceled:i", "sv_idle:i", "sv_used:i", "sv_tested:i", "sv_login:i",
		"maxwait:i", "maxwait_us:i", "pool_mode:s",
		"max_size:i", "min_size:i", "cl_idle:i", "paused:i", "disabled:i", "read_only:i", "host:s")
	ClientColumns = cols("type:s", "user:s", "database:s", "state:s", "addr:s", "port:i", "local_addr:s", "local_port:i",
		"connect_time:s", "request_time:s", "wait:i", "wait_us:i", "close_needed:i", "ptr:s", "link:s", "remote_pid:i",
		"tls:s", "application_name:s", "prepared_statements:i", "id:q",
		"pool_mode:s", "read_only:i", "pins:s")
	ServerColumns = cols("type:s", "user:s", "database:s", "state:s", "addr:s", "port:i", "local_addr:s", "local_port:i",
		"connect_time:s", "request_time:s", "wait:i", "wait_us:i", "close_needed:i", "ptr:s", "link:s", "remote_pid:i",
		"tls:s", "application_name:s", "prepared_statements:i", "id:q",
		"host:s", "client_id:q")
	StatsColumns = cols("database:s", "total_xact_count:q", "total_query_count:q", "total_received:q", "total_sent:q",
		"total_xact_time:q", "total_query_time:q", "total_wait_time:q", "avg_xact_count:q", "avg_query_count:q",
		"avg_recv:q", "avg_sent:q", "avg_xact_time:q", "avg_query_time:q", "avg_wait_time:q")
	StatsTotalsColumns = cols("database:s", "xact_count:q", "query_count:q", "bytes_received:q", "bytes_sent:q",
		"xact_time:q", "query_time:q", "wait_time:q")
	DatabaseColumns = cols("name:s", "host:s", "port:i", "database:s", "force_user:s", "pool_size:i", "min_pool_size:i",
		"reserve_pool:i", "pool_mode:s", "max_connections:i", "current_connections:i", "paused:i", "disabled:i",
		"pausing:i", "hosts:s", "clients:i")
	UserColumns     = cols("name:s", "pool_mode:s", "auth_method:s", "admin:i", "stats_only:i")
	ConfigColumns   = cols("key:s", "value:s", "default:s", "changeable:s")
	ListColumns     = cols("list:s", "items:i")
	VersionColumns  = cols("version:s")
	StateColumns    = cols("key:s", "value:s")
	TopologyColumns = cols("database:s", "host:s", "role:s", "primary:i", "timeline:q", "replay_lag_ms:q", "replay_lag_bytes:q",
		"reachable:i", "fenced:i", "last_seen:s", "failovers:i", "error:s")
	// PeerColumns: PgBouncer's SHOW PEERS (peer_id, host, port,
	// pool_size), then sluice's.
	PeerColumns = cols("peer_id:i", "host:s", "port:i", "pool_size:i", "instance_id:s", "address:s", "version:s", "started:s",
		"databases:s", "config_matches:i", "config_differs:s", "self:i")
	// FailoverColumns: sluice's own (PgBouncer has no failover).
	FailoverColumns = cols("database:s", "primary:s", "timeline:q", "epoch:q", "done:i", "decided_by:s", "decided_at:s",
		"leader:s", "leading:i", "etcd_up:i", "can_promote:i", "why_not:s")
	PinColumns = cols("id:q", "user:s", "database:s", "addr:s", "reasons:s", "since:s", "pinned_for_ms:q",
		"port:i", "server_pid:i", "statement:s", "release:s")
)

// fakeParams are answered to SHOW <name> as PgBouncer does, for drivers
// that ask for them on connect.
var fakeParams = map[string]string{"client_encoding": "UTF8", "default_transaction_isolation": "read committed",
	"standard_conforming_strings": "on", "datestyle": "ISO", "timezone": "GMT", "server_version": "15.0"}

// Help is SHOW HELP's notice.
const Help = `Console usage
	SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|STATE
	SHOW STATS|STATS_TOTALS|STATS_AVERAGES|LISTS|TOPOLOGY|PINS|PEERS|FAILOVER
	SET key = arg (only client_encoding and friends, ignored)
	RELOAD
	PAUSE [<db>]
	RESUME [<db>]
	DISABLE <db>
	ENABLE <db>
	RECONNECT [<db>]
	KILL [<db>]
	KILL_CLIENT <id>
	WAIT_CLOSE [<db>]
	SWITCHOVER <db> [TO <host>]
	SHUTDOWN [WAIT_FOR_CLIENTS]
	UPGRADE`
