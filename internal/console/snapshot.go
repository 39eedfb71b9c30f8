package console

import "time"

// Snapshot is what the console and the HTTP API show: plain values
// copied out of the proxy at one moment (proxy.Server.Snapshot), owned by
// the caller. JSON names are the API's.
type Snapshot struct {
	Taken     time.Time  `json:"taken"`
	Started   time.Time  `json:"started"`
	Version   string     `json:"version"`
	Pools     []Pool     `json:"pools"`
	Clients   []Client   `json:"clients"`
	Servers   []Server   `json:"servers"`
	Databases []Database `json:"databases"`
	Users     []User     `json:"users"`
	Stats     []Stats    `json:"stats"`
	Hosts     []Host     `json:"topology"`
	Pins      []Pin      `json:"pins"`
	// Peers are the live instances of the fleet (cluster:), this one
	// included; empty (never nil) without a cluster section.
	Peers []Peer `json:"peers"`
	// Failover is, per database whose failover the fleet decides
	// (cluster: with failover.auto_promote), the decision in etcd and
	// the election as this instance knows them; empty (never nil)
	// without a cluster section.
	Failover []Failover `json:"failover"`
	Config   []Setting  `json:"config"`
	// LoginClients are client sockets that have not logged in yet.
	LoginClients int `json:"login_clients"`
}

// Pool is one (database, user) pool of server connections.
type Pool struct {
	Database  string `json:"database"`
	User      string `json:"user"`
	ClActive  int    `json:"cl_active"`  // clients holding a server connection
	ClWaiting int    `json:"cl_waiting"` // clients waiting for one
	SvActive  int    `json:"sv_active"`  // server connections lent to a client
	SvIdle    int    `json:"sv_idle"`
	SvLogin   int    `json:"sv_login"` // being dialled
	// MaxWait is how long the oldest client queued for a server
	// connection has waited (0: none waits).
	MaxWait  time.Duration `json:"maxwait_ns"`
	PoolMode string        `json:"pool_mode"`
	// sluice's own.
	MaxSize  int    `json:"max_size"`
	MinSize  int    `json:"min_size"`
	ClIdle   int    `json:"cl_idle"` // transaction-pooled clients between transactions
	Dials    uint64 `json:"dials"`
	Timeouts uint64 `json:"timeouts"`
	ReadOnly bool   `json:"read_only"` // a standby pool of listen.read_only_address
	Host     string `json:"host"`      // a standby pool's host
	Paused   bool   `json:"paused"`    // from State
	Disabled bool   `json:"disabled"`  // from State
}

// Client is one client connection.
type Client struct {
	ID       uint64 `json:"id"`
	User     string `json:"user"`
	Database string `json:"database"`
	// State is "active" (holds a server connection), "waiting" (for
	// one), "idle" (logged in, between transactions) or "login".
	State       string    `json:"state"`
	Addr        string    `json:"addr"`
	Port        int       `json:"port"`
	LocalAddr   string    `json:"local_addr"`
	LocalPort   int       `json:"local_port"`
	ConnectTime time.Time `json:"connect_time"`
	TLS         string    `json:"tls"`
	AppName     string    `json:"application_name"`
	PoolMode    string    `json:"pool_mode"`
	ReadOnly    bool      `json:"read_only"`
	// ServerPID is the attached server connection's PID (0: none).
	ServerPID uint32   `json:"server_pid"`
	Pins      []string `json:"pins,omitempty"`
}

// Server is one server connection.
type Server struct {
	User     string `json:"user"`
	Database string `json:"database"`
	// State is "active" (lent to a client), "idle", or "listen" (the
	// LISTEN fan-out's listener connection, outside max_size).
	State       string    `json:"state"`
	Addr        string    `json:"addr"`
	Port        int       `json:"port"`
	LocalAddr   string    `json:"local_addr"`
	LocalPort   int       `json:"local_port"`
	ConnectTime time.Time `json:"connect_time"`
	PID         uint32    `json:"remote_pid"`
	TLS         string    `json:"tls"`
	// ClientID is the client it serves (0: idle).
	ClientID uint64 `json:"client_id"`
	Host     string `json:"host"`
	// AppName is the server session's application_name as sluice last
	// read it (backend.Conn.ApplicationName).
	AppName string `json:"application_name"`
	// CloseNeeded: retired (RECONNECT, SWITCHOVER, a RELOAD that changed
	// the database's server); closed when released.
	CloseNeeded bool `json:"close_needed"`
}

// Database is one configured database.
type Database struct {
	Name        string `json:"name"`
	Host        string `json:"host"` // the current primary, or the only host
	Port        int    `json:"port"`
	DBName      string `json:"database"`
	PoolSize    int    `json:"pool_size"`
	MinPoolSize int    `json:"min_pool_size"`
	PoolMode    string `json:"pool_mode"`
	// MaxConns is the database's limit in force: max_db_connections, or
	// in a fleet this instance's share of it; 0 = none.
	MaxConns     int      `json:"max_connections"`
	CurrentConns int      `json:"current_connections"` // server connections, all users
	Paused       bool     `json:"paused"`
	Pausing      bool     `json:"pausing"`
	Disabled     bool     `json:"disabled"`
	Hosts        []string `json:"hosts"`
	Clients      int      `json:"clients"`
}

// User is one configured user.
type User struct {
	Name       string `json:"name"`
	AuthMethod string `json:"auth_method"`
	Admin      bool   `json:"admin"`      // in admin.users
	StatsOnly  bool   `json:"stats_only"` // in admin.stats_users
}

// Stats are one database's counters since sluice started.
type Stats struct {
	Database   string        `json:"database"`
	XactCount  uint64        `json:"xact_count"`
	QueryCount uint64        `json:"query_count"`
	Received   uint64        `json:"bytes_received"`
	Sent       uint64        `json:"bytes_sent"`
	XactTime   time.Duration `json:"xact_time_ns"`
	QueryTime  time.Duration `json:"query_time_ns"`
	WaitTime   time.Duration `json:"wait_time_ns"`
	Waits      uint64        `json:"waits"` // server connection borrows, for avg_wait_time
}

// Host is one monitored server of a database with several hosts.
type Host struct {
	Database  string        `json:"database"`
	Host      string        `json:"host"`
	Role      string        `json:"role"` // primary, standby, fenced, unknown
	Primary   bool          `json:"primary"`
	Timeline  uint32        `json:"timeline"`
	Lag       time.Duration `json:"replay_lag_ns"`
	LagKnown  bool          `json:"lag_known"`
	LagBytes  uint64        `json:"lag_bytes"`
	Reachable bool          `json:"reachable"`
	Fenced    bool          `json:"fenced"`
	LastSeen  time.Time     `json:"last_seen"`
	Error     string        `json:"error,omitempty"`
	Failovers int           `json:"failovers"`
}

// Pin is a transaction-pooled client holding its server connection
// between transactions: why, since when, because of which statement (its
// beginning, as the client sent it), and how the client can end it.
type Pin struct {
	ClientID  uint64    `json:"client_id"`
	User      string    `json:"user"`
	Database  string    `json:"database"`
	Addr      string    `json:"addr"`
	Port      int       `json:"port"`
	Reasons   []string  `json:"reasons"`
	Since     time.Time `json:"since"`
	ServerPID uint32    `json:"server_pid"`
	Statement string    `json:"statement"`
	Release   string    `json:"release"`
}

// Setting is one configuration value as SHOW CONFIG lists it (secrets
// are never included).
type Setting struct {
	Key        string `json:"key"`
	Value      string `json:"value"`
	Default    string `json:"default"`
	Changeable bool   `json:"changeable"` // applies on RELOAD
}

// Readiness is one database's answer in /readyz.
type Readiness struct {
	Database string `json:"database"`
	Ready    bool   `json:"ready"`
	// Primary is the host writes go to ("" when there is none).
	Primary string `json:"primary,omitempty"`
	// Reason says why the database is not ready, or "read-only fallback"
	// when it is served by standbys only.
	Reason string `json:"reason,omitempty"`
}

// Peer is one live instance of the fleet as this instance sees it in
// etcd (internal/cluster).
type Peer struct {
	PeerID     int       `json:"peer_id"`
	InstanceID string    `json:"instance_id"`
	Address    string    `json:"address"` // host:port peers reach its listener at
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Databases  []string  `json:"databases"`
	// ConfigMatches is whether its databases, users and auth equal this
	// instance's; ConfigDiffers names the parts that do not.
	ConfigMatches bool     `json:"config_matches"`
	ConfigDiffers []string `json:"config_differs"`
	Self          bool     `json:"self"`
}

// Failover is one database's failover in a fleet (SHOW FAILOVER, GET
// /api/failover): the decision recorded in etcd and the election for
// it, as this instance last read them (while etcd is unreachable, the
// last known).
type Failover struct {
	Database string `json:"database"`
	// Primary, Timeline and Epoch are the decision's ("" and 0 before
	// the first one). Done is false for an intent: a promotion chosen
	// and perhaps not carried out yet (whoever leads finishes it).
	Primary  string `json:"primary"`
	Timeline uint32 `json:"timeline"`
	Epoch    uint64 `json:"epoch"`
	Done     bool   `json:"done"`
	// DecidedBy is the instance that wrote the decision, DecidedAt when.
	DecidedBy string    `json:"decided_by"`
	DecidedAt time.Time `json:"decided_at"`
	// Leader is the instance holding the election now ("" when none or
	// not known); Leading is whether it is this one.
	Leader  string `json:"leader"`
	Leading bool   `json:"leading"`
	// EtcdUp is whether etcd answered the election's last request.
	EtcdUp bool `json:"etcd_up"`
	// CanPromote is whether this instance may promote a standby of the
	// database now (it leads and etcd answers); WhyNot says why not.
	CanPromote bool   `json:"can_promote"`
	WhyNot     string `json:"why_not"`
}

// FleetHealth is this instance's standing in the fleet, for /readyz.
type FleetHealth struct {
	InstanceID string `json:"instance_id"`
	PeerID     int    `json:"peer_id"` // 0 while it holds none
	// EtcdUp is whether it is registered and etcd answers; Reason says
	// why not, or what it holds.
	EtcdUp bool   `json:"etcd_up"`
	Reason string `json:"reason"`
}
