package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/config"
)

// TLSOptions say whether and how server connections use TLS, with the
// meanings of libpq's sslmode, sslrootcert, sslcert and sslkey.
type TLSOptions struct {
	// Mode is disable (the zero value), prefer, require, verify-ca or
	// verify-full. TLS is never used on Unix sockets (prefer falls back to
	// plain there; config rejects the stricter modes).
	Mode config.ServerTLSMode
	// CAFile holds the PEM CA certificates for verify-ca and verify-full
	// (and turns require into verify-ca, as in libpq).
	CAFile string
	// CertFile and KeyFile are an optional client certificate.
	CertFile, KeyFile string
	// ServerName is the host verify-full checks the certificate against.
	ServerName string
}

// TLSOptionsFor builds TLSOptions from a database's server_tls and the
// host being dialled (verify-full checks the host part of its address).
func TLSOptionsFor(st config.ServerTLS, h config.Host) TLSOptions {
	o := TLSOptions{Mode: st.Mode, CAFile: st.CAFile, CertFile: st.CertFile, KeyFile: st.KeyFile}
	if h.Network == "tcp" {
		if host, _, err := net.SplitHostPort(h.Address); err == nil {
			o.ServerName = host
		}
	}
	return o
}

// TLSError is a TLS failure that retrying cannot fix: a certificate that
// does not verify, a server without TLS when TLS is required, or an
// unreadable file. Dial returns it at once, without retries.
type TLSError struct {
	Mode config.ServerTLSMode
	Err  error
}

func (e *TLSError) Error() string { return fmt.Sprintf("server_tls.mode %s: %v", e.Mode, e.Err) }
func (e *TLSError) Unwrap() error { return e.Err }

// startTLS asks the server for TLS on a freshly dialled nc (before the
// StartupMessage) and returns the conn to use from then on: nc itself when
// TLS is off or the server declined under prefer, else a *tls.Conn that
// owns nc. Exactly one byte is read from nc before the handshake, so
// nothing a server (or a man in the middle) sends in plain text can be
// taken for TLS-protected data (CVE-2021-23222).
//
// ctx bounds the whole negotiation (Dial passes one limited by DialTimeout).
func startTLS(ctx context.Context, nc net.Conn, network string, o TLSOptions) (net.Conn, error) {
	if o.Mode == config.ServerTLSDisable || network != "tcp" {
		return nc, nil
	}
	cfg, err := o.clientConfig()
	if err != nil {
		return nil, &TLSError{Mode: o.Mode, Err: err}
	}
	defer (&Conn{Conn: nc}).watch(ctx)()
	req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return nil, fmt.Errorf("reading the answer to SSLRequest: %w", err)
	}
	switch b[0] {
	case 'S':
	case 'N':
		if o.Mode == config.ServerTLSPrefer {
			return nc, nil
		}
		return nil, &TLSError{Mode: o.Mode, Err: errors.New("the server does not support TLS (it has ssl = off); set server_tls.mode to prefer or disable, or enable ssl on the server")}
	default:
		return nil, fmt.Errorf("the server answered SSLRequest with %q instead of S or N", b[0])
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		var ve *tls.CertificateVerificationError
		var ue x509.UnknownAuthorityError
		var he x509.HostnameError
		if errors.As(err, &ve) || errors.As(err, &ue) || errors.As(err, &he) {
			return nil, &TLSError{Mode: o.Mode, Err: fmt.Errorf("the server's certificate could not be verified: %w", err)}
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// clientConfig builds the tls.Config for one dial; the files are read each
// time, so renewed certificates are used by the next connection.
func (o TLSOptions) clientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"postgresql"}}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("server_tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	mode := o.Mode
	if mode == config.ServerTLSRequire && o.CAFile != "" {
		mode = config.ServerTLSVerifyCA // libpq: require with a root CA file verifies it
	}
	if mode == config.ServerTLSPrefer || mode == config.ServerTLSRequire {
		cfg.InsecureSkipVerify = true // encryption only, as libpq
		return cfg, nil
	}
	if o.CAFile == "" {
		return nil, errors.New("server_tls.ca_file is required to verify the server's certificate")
	}
	data, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("server_tls.ca_file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("server_tls.ca_file: %s holds no PEM certificate", o.CAFile)
	}
	if mode == config.ServerTLSVerifyFull {
		if o.ServerName == "" {
			return nil, errors.New("verify-full needs a host name to check the certificate against")
		}
		cfg.RootCAs, cfg.ServerName = roots, o.ServerName
		return cfg, nil
	}
	// verify-ca: the chain must reach roots; the name is not checked.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		if err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
	return cfg, nil
}
