package config

// validateToken requires token.public_key_file when any auth method
// (auth.method, users[].auth_method, access[].method) is token, so that a
// token login can never be configured without a key to check it. Whether
// the file holds a usable key is checked by the proxy when it loads it.
func validateToken(cfg *Config, c *collector) {
	if cfg.Token.PublicKeyFile != "" {
		return
	}
	where := methodSetAt(cfg, AuthToken)
	if where != "" {
		c.invalid("token.public_key_file", "required because %s is token (a PEM Ed25519 public key; create one with 'sluice token keygen')", where)
	}
}
