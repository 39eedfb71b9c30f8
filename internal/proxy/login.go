package proxy

import (
	"errors"
	"fmt"

	"github.com/sluice-proxy/sluice/internal/auth"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/frontend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// authenticate checks the client's password with the configured method.
// An unknown user runs the same exchange against mock credentials, so a
// client cannot tell unknown users from wrong passwords. On failure the
// client has been sent the error and the session must end.
func (ss *session) authenticate(st *state, u *config.User, name string) error {
	method := st.cfg.Auth.Method
	var creds *auth.Credentials
	if u != nil {
		method = u.EffectiveAuthMethod(method)
		creds = st.creds[u.Name]
	}
	err := auth.Authenticate(frontend.AuthConn{Conn: ss.client}, auth.Method(method), name, creds)
	if err == nil && u == nil {
		err = auth.ErrWrongPassword // trust for a user sluice does not know
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrWrongPassword):
		ss.srv.metrics.ClientLoginFailure.WithLabelValues("wrong_password").Inc()
		ss.fail(wire.CodeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", name), "method", method)
	case errors.Is(err, auth.ErrProtocol):
		ss.srv.metrics.ClientLoginFailure.WithLabelValues("protocol").Inc()
		ss.fail(wire.CodeProtocolViolation, err.Error(), "user", name)
	default:
		ss.srv.metrics.ClientLoginFailure.WithLabelValues("disconnect").Inc()
		ss.srv.log.Info("client left during authentication", "remote", ss.remote(), "user", name, "error", err)
	}
	return err
}
