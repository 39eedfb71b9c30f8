package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// sources is where validation gets what the file refers to but does not
// hold: environment variables (${VAR} in passwords) and secret files
// (users[].password_file, users[].server_password_file).
type sources struct {
	env      func(string) (string, bool)
	readFile func(string) ([]byte, error)
}

// maxSecretFile bounds a password file: a password is short, and a path
// that points at something huge (or endless) must not hang a reload.
const maxSecretFile = 64 << 10

// ReadSecretFile reads a password file for Load: a regular file of at most
// 64 KiB. It never puts the file's content in an error.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("larger than %d bytes; it should hold only a password", maxSecretFile)
	}
	return data, nil
}

// readSecret reads one password file and drops one trailing newline ("\n"
// or "\r\n"), which editors and `echo` add. Anything else, spaces
// included, is part of the password. An empty result is an error, as an
// empty password is.
func readSecret(path string, readFile func(string) ([]byte, error)) (string, error) {
	data, err := readFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the password file: %s", describeFileErr(path, err))
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", fmt.Errorf("the password file %s is empty", path)
	}
	return s, nil
}

// describeFileErr keeps os errors short: they already name the path.
func describeFileErr(path string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err.Error()
	}
	return path + ": " + err.Error()
}

// lastKey is the last element of a key path: "password" for "users[0].password".
func lastKey(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

// passwordless reports whether users with method need no client password
// in users[]: trust asks for nothing, token and cert prove identity
// another way.
func passwordless(method AuthMethod) bool {
	return method == AuthTrust || method == AuthToken || method == AuthCert
}

// validateAuthQuery checks auth.auth_user, auth.auth_query and
// auth.auth_query_cache_ttl. The auth user must be a configured user (its
// server login runs the query); the query must take the user name as $1.
func validateAuthQuery(cfg *Config, c *collector) {
	nonNegative(c, "auth.auth_query_cache_ttl", cfg.Auth.AuthQueryCacheTTL)
	if strings.TrimSpace(cfg.Auth.AuthQuery) == "" {
		c.invalid("auth.auth_query", "must not be empty (default: %s)", DefaultAuthQuery)
	} else if !strings.Contains(cfg.Auth.AuthQuery, "$1") {
		c.invalid("auth.auth_query", "must use $1 for the user name, as in %s", DefaultAuthQuery)
	}
	name := cfg.Auth.AuthUser
	if name == "" {
		return
	}
	u := cfg.User(name)
	if u == nil {
		c.invalid("auth.auth_user", "unknown user %q: the auth user must be in users[] (sluice logs in to PostgreSQL as it, with its server_password, to run auth_query)", name)
	}
}

// validateCert makes sure auth method cert is only configured where it
// can work: sluice must ask TLS clients for a certificate and verify it
// against tls.client_ca_file.
func validateCert(cfg *Config, c *collector) {
	where := methodSetAt(cfg, AuthCert)
	if where == "" {
		return
	}
	if cfg.TLS.Mode == TLSDisable {
		c.invalid("tls.mode", "must be allow or require because %s is cert (client certificates only exist over TLS)", where)
	}
	if cfg.TLS.ClientCAFile == "" {
		c.invalid("tls.client_ca_file", "required because %s is cert (the CA that client certificates must chain to)", where)
	}
}
