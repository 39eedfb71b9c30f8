package proxy

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/sluice-proxy/sluice/internal/access"
	"github.com/sluice-proxy/sluice/internal/refusal"
)

// Refusal reasons: the label of sluice_client_login_failures_total and
// the key, with the client's address, under which refusals are
// summarised in the log. A fixed set, so that neither the metric nor the
// summariser grows with what clients send.
const (
	reasonBadStartup         = "bad_startup"
	reasonLoginTimeout       = "login_timeout"
	reasonDisconnect         = "disconnect"
	reasonTLSRequired        = "tls_required"
	reasonTLSHandshake       = "tls_handshake"
	reasonTooManyConnections = "too_many_connections"
	reasonEvicted            = "evicted_before_login"
	reasonAcceptError        = "accept_error" // log key only: not a client's refusal
	reasonReplication        = "replication"
	reasonUnknownDatabase    = "unknown_database"
	reasonRateLimited        = "rate_limited"
	reasonAccessDenied       = "access_denied"
	reasonWrongPassword      = "wrong_password"
	reasonDatabaseDisabled   = "database_disabled" // DISABLE db
)

// logRefusal logs one refused client at level, in full if it is the
// first of its reason from its address within refusal.DefaultInterval,
// else only counted towards the summary line that flushRefusals writes.
// It never blocks on anything but the summariser's short lock.
func (s *Server) logRefusal(addr net.Addr, reason string, level slog.Level, msg string, attrs ...any) {
	if !s.refusals.Note(refusal.Key{Addr: access.Describe(addr), Reason: reason}, time.Now()) {
		return
	}
	s.log.Log(context.Background(), level, msg, attrs...)
}

// countRefusal counts a refused client in the metric and logs it through
// the summariser.
func (s *Server) countRefusal(addr net.Addr, reason string, level slog.Level, msg string, attrs ...any) {
	s.metrics.ClientLoginFailure.WithLabelValues(reason).Inc()
	s.logRefusal(addr, reason, level, msg, attrs...)
}

// flushRefusals writes the summary lines of refusals held back, every
// interval until sluice shuts down, and once more then. It runs on a
// goroutine of its own, counted in bgWG.
func (s *Server) flushRefusals() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.refusals.Interval())
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.logSummaries(s.refusals.Flush(now))
		case <-s.bgCtx.Done():
			// Whatever was held back, however recent, is reported.
			s.logSummaries(s.refusals.Flush(time.Now().Add(s.refusals.Interval())))
			return
		}
	}
}

func (s *Server) logSummaries(sums []refusal.Summary) {
	for _, sum := range sums {
		s.log.Info("clients refused since the last summary", "remote", sum.Addr, "reason", sum.Reason,
			"count", sum.Count, "since", sum.Since.UTC().Format(time.RFC3339))
	}
}

// acceptBackoff paces an accept loop after errors (EMFILE, ENFILE: out of
// descriptors until some client leaves): 5 ms doubling up to 100 ms,
// back to nothing after a successful accept. Other listeners are not
// affected, and the listener's queued connections wait only that long.
type acceptBackoff struct{ d time.Duration }

// wait pauses; it returns false if ctx ended first.
func (b *acceptBackoff) wait(ctx context.Context) bool {
	b.d = min(max(2*b.d, 5*time.Millisecond), 100*time.Millisecond)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *acceptBackoff) reset() { b.d = 0 }
