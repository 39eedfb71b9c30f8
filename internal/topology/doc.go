// Package topology watches the servers of one database and says which one
// takes writes, which are usable standbys and how far behind they are, and
// can promote a standby when the primary is gone.
//
// A Monitor probes every host once per Interval, each from its own
// goroutine over a dedicated connection (SQLProber over backend.Dial, so
// TLS and login match the pools; one attempt per probe, bounded by
// ProbeTimeout), and keeps a Snapshot. Roles come from what the servers
// say (pg_is_in_recovery()), never from the order of the list.
//
// # Writable primary and fencing
//
// The Monitor remembers the newest timeline any host has reported. A
// server not in recovery whose timeline is older than that is fenced: it is
// an old primary back after a failover, and is never reported writable, even
// if the new primary is down too. Of the servers on the newest timeline that
// claim to be primary, a single one is the writable primary; if several
// claim it (two standbys promoted at once both pick the same next
// timeline), the one already in use keeps it and the others are fenced, and
// if none was in use none is chosen. Every such situation is logged as an
// error naming all the servers involved. Fencing knowledge lives as long
// as the Monitor (SetHosts keeps it); a restarted sluice that sees only an
// old primary cannot know it is old.
//
// # Timeline
//
// On a primary the timeline is exact: the first eight hex digits of
// pg_walfile_name(pg_current_wal_flush_lsn()), which PostgreSQL computes
// from the timeline it inserts WAL on, and which is the new one from the
// moment pg_is_in_recovery() turns false after a promotion.
// pg_control_checkpoint().timeline_id is not used for a primary because it
// changes only at the checkpoint that follows the promotion, seconds later
// under load; in that window a promoted standby and a returning old primary
// would look alike. On a standby no exact figure exists in SQL; the probe
// takes the highest of pg_stat_wal_receiver.received_tli (while streaming),
// the last restartpoint's timeline, and the newest timeline among the WAL
// and history files in pg_wal (pg_ls_waldir()). A standby's timeline only
// decides which standbys may be promoted and raises the fencing bar; it
// never lags ahead of reality.
//
// # Lag
//
// now() - pg_last_xact_replay_timestamp() is not used: it grows without
// bound while the primary is idle, and would make every standby of a quiet
// database look stale. Byte distance alone (pg_current_wal_lsn() on the
// primary minus pg_last_wal_replay_lsn() on the standby) is exact but says
// nothing about time, and max_replica_lag is a time. The Monitor combines
// them: it keeps the history of the primary's flush position
// (pg_current_wal_flush_lsn(), what a standby can possibly have; the write
// and insert positions run ahead of it with synchronous_commit=off), one
// sample per probe in which it moved. A standby's lag, as of its own probe,
// is the age of the oldest primary position it has not replayed; zero if it
// has replayed everything the primary had flushed. So an idle pair shows no
// lag, a paused or broken standby's lag grows with the wall clock from the
// first write it missed, and the figure is low by at most one probe
// interval. LagBytes gives the byte distance too. Until a primary has been
// seen, a standby's lag is unknown (LagKnown false).
//
// # Automatic promotion
//
// With Config.AutoPromote set, see AutoPromote.decide for the exact rules:
// in short, once no server has answered as writable primary and every
// server that is not a reachable standby (or fenced) has been silent for
// After, the standby on the newest timeline with the most WAL (the higher
// of its receive and replay positions: everything received is replayed
// before the promotion ends, so this loses the least) is promoted with
// pg_promote(). A server that answers at all, even with an error such as
// "the database system is starting up", blocks promotion.
//
// # In a fleet
//
// With a Fleet (SetFleet: several sluices, cluster: and auto_promote),
// the decision is the fleet's, not this Monitor's: only the instance
// holding the database's election acts, never while etcd is unreachable,
// and writes go only to the server the fleet's decision names (any other
// claimant is fenced). decideFleet (fleet.go) is the pure core; it runs
// the same AutoPromote policy, then writes an intent, promotes and writes
// the decision done (fleet_run.go), and finishes an intent a previous
// leader left. Without a decision yet, the rules above apply.
//
// # Notifications and metrics
//
// Snapshot().Version and Changed() tell a pool when reachability, a role,
// a timeline or the writable primary changed; a change is visible within one
// probe interval. Hooks report per-host state after every probe, primary
// changes, failovers, the time spent without a writable primary and
// promotion attempts, for the metrics package to export.
package topology
