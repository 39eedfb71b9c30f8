package backend

import "github.com/sluice-proxy/sluice/internal/backend/stmtcache"

// StatementCache remembers the prepared statements sluice made on one
// connection; see stmtcache.Cache (in a package of its own, with no I/O,
// so that the pure transaction-mode core can use it too).
type StatementCache = stmtcache.Cache

// NewStatementCache returns an empty cache holding at most max names.
func NewStatementCache(max int) *StatementCache { return stmtcache.New(max) }
