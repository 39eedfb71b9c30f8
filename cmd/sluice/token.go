package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/token"
)

// tokenCmd is `sluice token`: it signs a short-lived login token with the
// private key and prints it on stdout, for a client to use as its password.
func tokenCmd() *cobra.Command {
	var path, keyPath, user, database string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "token --config FILE --user USER --database DB [--ttl 15m]",
		Short: "Print a short-lived signed login token to use as a password",
		Long: `Print a short-lived login token, signed with the Ed25519 private key of
token.private_key_file (or --key), for a user whose auth method is token.
The client sends it as its password, e.g.

  PGPASSWORD=$(sluice token -c sluice.yaml --user app --database appdb) psql ...

sluice checks it with token.public_key_file. The token is a secret until it
expires: keep --ttl short. 'sluice token keygen' creates a key pair.

With a config (--config, or the default sluice.yaml when --key is not
given) the command refuses a user that is not in users[], a database that
is not in databases, and a user that cannot log in with a token (neither
its auth method nor an access rule for it and the database is token): such
a token would never be accepted. With --key and no --config nothing is
checked, and the command says so on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || database == "" {
				return errors.New("--user and --database are required")
			}
			if keyPath == "" || cmd.Flags().Changed("config") {
				cfg, err := config.Load(path)
				if err != nil {
					return err
				}
				if err := checkTokenTarget(cfg, user, database); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if keyPath == "" {
					if keyPath = cfg.Token.PrivateKeyFile; keyPath == "" {
						return fmt.Errorf("%s: token.private_key_file is not set (or pass --key FILE)", path)
					}
				}
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: user %q and database %q are not checked against a config (pass --config to check them); sluice accepts the token only if the user is in users[] with auth method token and the database is configured\n", user, database)
			}
			priv, err := token.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			tok, err := token.Issue(priv, user, database, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "sluice.yaml", "path to the YAML config file (token.private_key_file; the user and database are checked against it)")
	c.Flags().StringVar(&keyPath, "key", "", "PEM Ed25519 private key file; overrides token.private_key_file")
	c.Flags().StringVar(&user, "user", "", "the user the token logs in as (required)")
	c.Flags().StringVar(&database, "database", "", "the database the token is for, as clients name it (required)")
	c.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "how long the token is valid")
	c.AddCommand(keygenCmd())
	return c
}

// checkTokenTarget refuses to sign a token that sluice, running with cfg,
// would never accept: for a user it does not know (tokens are only for
// users[] entries, see proxy.checkToken), for a database it does not
// serve, or for a user who logs in to that database with another method
// (its auth_method, or auth.method, and no access rule that could match it
// sets method token).
func checkTokenTarget(cfg *config.Config, user, database string) error {
	u := cfg.User(user)
	if u == nil {
		return fmt.Errorf("user %q is not in users[]: sluice would refuse a token for it", user)
	}
	if _, ok := cfg.Databases[database]; !ok {
		return fmt.Errorf("database %q is not in databases: sluice would refuse a token for it", database)
	}
	method := u.EffectiveAuthMethod(cfg.Auth.Method)
	if method == config.AuthToken {
		return nil
	}
	for _, r := range cfg.Access {
		if r.Method == config.AuthToken && (len(r.Users) == 0 || slices.Contains(r.Users, user)) &&
			(len(r.Databases) == 0 || slices.Contains(r.Databases, database)) {
			return nil
		}
	}
	return fmt.Errorf("user %q logs in with %s, not token (set its auth_method: token, or an access rule with method: token): sluice would refuse the token", user, method)
}

func keygenCmd() *cobra.Command {
	var priv, pub string
	c := &cobra.Command{
		Use:   "keygen --private FILE --public FILE",
		Short: "Create an Ed25519 key pair for login tokens (never overwrites files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := token.GenerateKeyPair(priv, pub); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (keep it secret: token.private_key_file) and %s (token.public_key_file)\n", priv, pub)
			return nil
		},
	}
	c.Flags().StringVar(&priv, "private", "", "where to write the PEM private key (mode 0600)")
	c.Flags().StringVar(&pub, "public", "", "where to write the PEM public key")
	c.MarkFlagRequired("private")
	c.MarkFlagRequired("public")
	return c
}
