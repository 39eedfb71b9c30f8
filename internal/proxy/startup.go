package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/peercancel"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// readStartup answers SSL requests ('S' and a TLS handshake when tls.mode
// allows it, else 'N') and GSS requests ('N') until a StartupMessage
// arrives, serves cancel requests, and negotiates the protocol version.
// It returns nil when the connection is done with.
func (ss *session) readStartup(maxLen int, tc config.TLS) (*frontend.Startup, error) {
	secured := false
	for range 3 {
		st, err := frontend.ReadStartup(ss.client, maxLen)
		if err != nil {
			ss.startupFailed(err)
			return nil, err
		}
		switch st.Kind {
		case frontend.KindSSL, frontend.KindGSSEnc:
			if secured {
				ss.failAs(reasonBadStartup, wire.CodeProtocolViolation, "SSL/GSS encryption request received after TLS was established")
				return nil, errors.New("negotiation after TLS")
			}
			if st.Kind == frontend.KindSSL && tc.Mode != config.TLSDisable {
				conn, err := frontend.SharedTLS(tc, ss.srv.log).Upgrade(ss.client)
				if err != nil && !ss.wasEvicted() {
					level := slog.LevelInfo
					if errors.Is(err, io.EOF) { // hung up after the 'S': probing, not worth a line
						level = slog.LevelDebug
					}
					ss.srv.countRefusal(ss.client.RemoteAddr(), reasonTLSHandshake, level, "client refused", "remote", ss.remote(), "reason", err)
				}
				if err != nil {
					return nil, err
				}
				ss.mu.Lock() // terminate reads ss.client
				ss.client, secured = conn, true
				ss.mu.Unlock()
				continue
			}
			if _, err := ss.client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
			continue
		case frontend.KindCancel:
			ss.srv.cancel(st.PID, st.Secret)
			return nil, nil
		case frontend.KindPeerCancel:
			if ss.srv.receiveForwarded(st.Peer, ss.remote()) {
				return nil, nil
			}
			err := frontend.UnsupportedProtocol(peercancel.Code) // as before there were fleets
			ss.startupFailed(err)
			return nil, err
		}
		// Unix sockets are exempt: libpq never uses TLS over them.
		if tc.Mode == config.TLSRequire && !secured && ss.remote() != "unix" {
			ss.failAs(reasonTLSRequired, wire.CodeInvalidAuthSpec, "sluice requires TLS: connect with sslmode=require or stronger", "user", st.Get("user"))
			return nil, errors.New("plain-text client refused")
		}
		if needed, unrecognized := st.Negotiation(); needed {
			msg := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized}
			if err := wire.Write(ss.client, msg); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	ss.failAs(reasonBadStartup, wire.CodeProtocolViolation, "too many SSL/GSS negotiation requests")
	return nil, errors.New("negotiation loop")
}

// startupFailed reports a startup packet that could not be read. A
// malformed one gets its error; a client that connects and closes without
// sending a byte (a load balancer's TCP check, a port scan, a client
// that gave up after SSL negotiation, as libpq does when it retries with
// another sslmode) is logged at debug level only, as PostgreSQL logs
// nothing then; the rest, timeouts included, are counted and summarised.
func (ss *session) startupFailed(err error) {
	var pe *frontend.ProtocolError
	var ne net.Error
	switch {
	case ss.wasEvicted():
		// made room for a newer socket: counted and logged by the accept
		// loop, told by end()
	case errors.As(err, &pe):
		ss.failAs(reasonBadStartup, pe.Code, pe.Msg)
	case errors.Is(err, io.EOF):
		ss.srv.log.Debug("client closed the connection before its startup packet", "remote", ss.remote())
	case errors.As(err, &ne) && ne.Timeout():
		ss.srv.countRefusal(ss.client.RemoteAddr(), reasonLoginTimeout, slog.LevelInfo, "client left during startup", "remote", ss.remote(), "error", err)
	case !errors.Is(err, net.ErrClosed):
		ss.srv.countRefusal(ss.client.RemoteAddr(), reasonDisconnect, slog.LevelInfo, "client left during startup", "remote", ss.remote(), "error", err)
	}
}
