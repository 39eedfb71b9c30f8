package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/txpool"
)

// authCache holds auth_query results per (database, user) for
// auth.auth_query_cache_ttl. Concurrent logins of one user share one
// look-up. A failed look-up is not cached. Each loaded configuration
// (state) has its own, so a reload starts empty.
type authCache struct {
	mu      sync.Mutex
	entries map[poolKey]*authEntry
}

type authEntry struct {
	done    chan struct{} // closed when the look-up has finished
	creds   *auth.Credentials
	err     error
	fetched time.Time
}

// usesAuthQuery reports whether a login as u (nil: not in users[]) with
// method is checked against a password looked up with auth_query: when
// auth.auth_user is set, the user has no password in the config, and the
// method exchanges a password.
func usesAuthQuery(cfg *config.Config, u *config.User, method config.AuthMethod) bool {
	if cfg.Auth.AuthUser == "" || (u != nil && u.Password != "") {
		return false
	}
	switch method {
	case config.AuthSCRAM, config.AuthMD5, config.AuthPassword:
		return true
	}
	return false
}

// lookupPassword returns user's stored password in db as Credentials (nil
// when auth_query returns no row, a NULL or an unusable password), from
// the cache when it is fresh enough, else by running auth_query on a
// connection of the auth user's pool for db.
func (s *Server) lookupPassword(ctx context.Context, st *state, db *config.Database, user string) (*auth.Credentials, error) {
	key := poolKey{db.Name, user}
	ttl := st.cfg.Auth.AuthQueryCacheTTL.D()
	st.auth.mu.Lock()
	if st.auth.entries == nil {
		st.auth.entries = make(map[poolKey]*authEntry)
	}
	e := st.auth.entries[key]
	if e != nil {
		select {
		case <-e.done:
			if e.err != nil || time.Since(e.fetched) >= ttl {
				e = nil // stale or failed: look up again
			}
		default: // in flight: share it
		}
	}
	owner := e == nil
	if owner {
		e = &authEntry{done: make(chan struct{})}
		st.auth.entries[key] = e
	}
	st.auth.mu.Unlock()

	if owner {
		e.creds, e.err = s.runAuthQuery(ctx, st, db, user)
		e.fetched = time.Now()
		close(e.done)
		if e.err != nil {
			st.auth.mu.Lock()
			if st.auth.entries[key] == e {
				delete(st.auth.entries, key)
			}
			st.auth.mu.Unlock()
		}
		return e.creds, e.err
	}
	select {
	case <-e.done:
		return e.creds, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runAuthQuery runs auth.auth_query with user as $1 on a connection of
// the auth user's pool for db. The stored password never reaches a log.
func (s *Server) runAuthQuery(ctx context.Context, st *state, db *config.Database, user string) (*auth.Credentials, error) {
	au := st.cfg.User(st.cfg.Auth.AuthUser)
	if au == nil { // prevented by config validation
		return nil, errors.New("auth.auth_user is not a configured user")
	}
	e := s.poolFor(db, au)
	conn, err := e.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("no server connection for auth_user %q: %w", au.Name, err)
	}
	rows, err := conn.Query(ctx, st.cfg.Auth.AuthQuery, user)
	var se *backend.ServerError
	switch {
	case err == nil:
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', false)
	case errors.As(err, &se):
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseIdle, 'I', false) // the server answered; the connection is idle
		return nil, fmt.Errorf("auth_query failed: %s (SQLSTATE %s)", se.Response.Message, se.Response.Code)
	default:
		(&txpool.Lease{Home: e, Conn: conn}).End(s.log, txpool.LeaseLost, 'I', false)
		return nil, fmt.Errorf("auth_query: %w", err)
	}
	if len(rows) == 0 {
		s.log.Debug("auth_query found no such user", "database", db.Name, "user", user)
		return nil, nil
	}
	if len(rows[0]) < 2 {
		return nil, fmt.Errorf("auth_query must return two columns (name, password), got %d", len(rows[0]))
	}
	if rows[0][1] == nil {
		s.log.Debug("auth_query returned no password for the user", "database", db.Name, "user", user)
		return nil, nil
	}
	creds, err := auth.NewCredentials(user, string(rows[0][1]))
	if err != nil {
		// The error never quotes the password.
		s.log.Warn("auth_query returned a password sluice cannot use; the user cannot log in", "database", db.Name, "user", user, "error", err)
		return nil, nil
	}
	return creds, nil
}

// authenticateLookedUp checks the client's password against the one
// auth_query returns and, on success, hands the keys recovered from the
// login to the (database, user) pool, so that its server connections log
// in as the user. It returns the user to run the session as (a bare
// entry when the user is not in users[]). Errors are as in authenticate,
// plus errLookup when the look-up itself failed.
func (ss *session) authenticateLookedUp(st *state, u *config.User, name string, method config.AuthMethod, db *config.Database) (*config.User, error) {
	ctx, cancel := context.WithTimeout(context.Background(), st.cfg.Limits.ClientLoginTimeout.D())
	defer cancel()
	creds, err := ss.srv.lookupPassword(ctx, st, db, name)
	if err != nil {
		return nil, &lookupError{err}
	}
	keys, err := auth.AuthenticateKeys(clientAuthConn(ss), authMethod(method), name, creds)
	if err != nil {
		return nil, err
	}
	if u == nil {
		u = &config.User{Name: name}
	}
	if u.ServerPassword == "" {
		ss.srv.setPoolKeys(db, u, keys)
	}
	return u, nil
}

// lookupError is a failed auth_query: the client gets 08006, nothing is
// counted against its address.
type lookupError struct{ err error }

func (e *lookupError) Error() string { return "looking up the password: " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }
