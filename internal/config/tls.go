package config

// validateTLS checks the client-side tls section. Files are not opened
// here (Parse does no I/O); the proxy loads them and reports problems.
func validateTLS(t TLS, c *collector) {
	enum(c, "tls.mode", c.spelled("tls.mode", t.Mode), TLSModes)
	enum(c, "tls.min_version", c.spelled("tls.min_version", t.MinVersion), TLSVersions)
	if t.Mode != TLSAllow && t.Mode != TLSRequire {
		return
	}
	if t.CertFile == "" {
		c.invalid("tls.cert_file", "required when tls.mode is %s (a PEM certificate chain)", t.Mode)
	}
	if t.KeyFile == "" {
		c.invalid("tls.key_file", "required when tls.mode is %s (the PEM private key of tls.cert_file)", t.Mode)
	}
}

// validateServerTLS checks databases.<name>.server_tls. Like libpq, sluice
// never uses TLS over a Unix socket, so modes that insist on TLS are an
// error for Unix hosts rather than a silent downgrade.
func validateServerTLS(db *Database, p string, c *collector) {
	st := db.ServerTLS
	enum(c, p+".mode", c.spelled(p+".mode", st.Mode), ServerTLSModes)
	verify := st.Mode == ServerTLSVerifyCA || st.Mode == ServerTLSVerifyFull
	if verify && st.CAFile == "" {
		c.invalid(p+".ca_file", "required when server_tls.mode is %s (the PEM CA certificates the server's certificate must chain to)", st.Mode)
	}
	if (st.CertFile == "") != (st.KeyFile == "") {
		if st.CertFile == "" {
			c.invalid(p+".cert_file", "required when server_tls.key_file is set (the client certificate to present)")
		} else {
			c.invalid(p+".key_file", "required when server_tls.cert_file is set (the private key of the client certificate)")
		}
	}
	if verify || st.Mode == ServerTLSRequire {
		for i, h := range db.Hosts {
			if ph, err := ParseHost(h); err == nil && ph.Network == "unix" {
				c.invalid(p+".mode", "%s needs TLS, which is never used over a Unix socket (hosts[%d] is %q); use disable or prefer, or a TCP host", st.Mode, i, h)
			}
		}
	}
}
