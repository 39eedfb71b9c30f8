package dashboard

// The series the dashboard reads, by their names in /metrics. They are
// the only place this package names a metric: a series that is absent
// (an older or newer sluice, a feature not configured) shows as "–" on
// the page rather than failing it.
const (
	// Pools, labelled {database, user}.
	serverConnections = "sluice_server_connections" // + {state: active|idle}
	waitingClients    = "sluice_pool_waiting_clients"
	poolMaxSize       = "sluice_pool_max_size"
	poolActiveClients = "sluice_pool_active_clients"
	borrowTimeouts    = "sluice_pool_borrow_timeouts_total"
	poolTransactions  = "sluice_pool_transactions_total"
	poolWait          = "sluice_pool_wait_seconds"            // histogram
	transactionTime   = "sluice_transaction_duration_seconds" // histogram

	// Transaction pooling pins, labelled {reason}.
	pinnedClients = "sluice_pinned_clients"
	pinsTotal     = "sluice_pins_total"

	// Refused logins, labelled {reason}.
	loginFailures = "sluice_client_login_failures_total"

	clientConnections = "sluice_client_connections"

	// Topology, labelled {database, host}.
	serverRole = "sluice_server_role" // + {role}; value 1
	serverUp   = "sluice_server_up"
	replayLag  = "sluice_server_replay_lag_seconds"
	// Labelled {database}.
	failovers = "sluice_failovers_total"
	// The gauge was renamed to end the clash with the counter
	// sluice_no_primary_seconds_total; either name is read.
	noPrimaryCurrent = "sluice_no_primary_current_seconds"
	noPrimaryOld     = "sluice_no_primary_seconds"
)

// watched is every name above: a snapshot keeps only these families.
var watched = map[string]bool{
	serverConnections: true, waitingClients: true, poolMaxSize: true, poolActiveClients: true,
	borrowTimeouts: true, poolTransactions: true, poolWait: true, transactionTime: true,
	pinnedClients: true, pinsTotal: true, loginFailures: true, clientConnections: true,
	serverRole: true, serverUp: true, replayLag: true, failovers: true,
	noPrimaryCurrent: true, noPrimaryOld: true,
}
