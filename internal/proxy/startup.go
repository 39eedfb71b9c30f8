package proxy

import (
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
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
			var pe *frontend.ProtocolError
			if errors.As(err, &pe) {
				ss.fail(pe.Code, pe.Msg)
			} else if !errors.Is(err, net.ErrClosed) {
				ss.srv.log.Info("client left during startup", "remote", ss.remote(), "error", err)
			}
			return nil, err
		}
		switch st.Kind {
		case frontend.KindSSL, frontend.KindGSSEnc:
			if secured {
				ss.fail(wire.CodeProtocolViolation, "SSL/GSS encryption request received after TLS was established")
				return nil, errors.New("negotiation after TLS")
			}
			if st.Kind == frontend.KindSSL && tc.Mode != "disable" {
				conn, err := frontend.SharedTLS(tc, ss.srv.log).Upgrade(ss.client)
				if err != nil {
					ss.srv.log.Info("client refused", "remote", ss.remote(), "reason", err)
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
		}
		// Unix sockets are exempt: libpq never uses TLS over them.
		if tc.Mode == "require" && !secured && ss.remote() != "unix" {
			ss.fail(wire.CodeInvalidAuthSpec, "sluice requires TLS: connect with sslmode=require or stronger", "user", st.Get("user"))
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
	ss.fail(wire.CodeProtocolViolation, "too many SSL/GSS negotiation requests")
	return nil, errors.New("negotiation loop")
}
