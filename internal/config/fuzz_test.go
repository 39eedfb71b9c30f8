package config

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, that every failure is a
// non-empty Problems whose lines hold one problem each, and that every
// success is a usable Config which yaml.v3's own strict decoder
// (KnownFields(true)) also accepts. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	f.Add([]byte("databases: {a: {hosts: [\"h:1\"], pool: &p {<<: *p}}}"))
	env := fakeEnv(exampleEnv)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseWith(data, env, exampleFiles)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 || cfg != nil {
				t.Fatalf("error %T %v with cfg %v", err, err, cfg)
			}
			for _, p := range ps {
				if p.String() == "" || strings.ContainsAny(p.String(), "\n\r") {
					t.Fatalf("problem %q is empty or spans lines", p.String())
				}
			}
			return
		}
		checkInvariants(t, cfg)

		var strict Config
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&strict); err != nil && len(bytes.TrimSpace(data)) > 0 {
			t.Fatalf("Parse accepted what yaml.v3 KnownFields(true) rejects: %v", err)
		}
	})
}

func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	if len(cfg.Databases) == 0 {
		t.Fatal("no databases")
	}
	for name, db := range cfg.Databases {
		if db == nil || db.Name != name || db.DBName == "" || !slices.Contains(PoolModes, db.PoolMode.String()) || db.Pool.MaxPreparedStatements < 1 {
			t.Fatalf("bad database %q: %+v", name, db)
		}
		if h := db.PrimaryHost(); h.Network == "" || h.Address == "" {
			t.Fatalf("database %q: unusable primary host %+v", name, h)
		}
		if db.Pool.MaxSize < 1 || db.Pool.MaxSize < db.Pool.MinSize || db.Pool.MinSize < 0 || db.Pool.BorrowTimeout < 0 {
			t.Fatalf("database %q: bad pool %+v", name, db.Pool)
		}
		if db.HealthCheckInterval <= 0 || db.HealthCheckTimeout <= 0 || db.MaxReplicaLag < 0 || db.Failover.PromoteAfter <= 0 ||
			!slices.Contains(ReadOnlyFallbacks, db.ReadOnlyFallback) {
			t.Fatalf("database %q: bad HA settings %+v", name, db)
		}
		if (len(db.Hosts) > 1 || db.Failover.User != "") && cfg.User(db.Failover.User) == nil {
			t.Fatalf("database %q: failover.user %q is not a configured user", name, db.Failover.User)
		}
		if db.Failover.AutoPromote && len(db.Hosts) < 2 {
			t.Fatalf("database %q: auto_promote with no standby", name)
		}
		b := db.Backend
		for k := 1; k <= b.EffectiveRetries() && k <= 100; k++ {
			if b.Wait(k) < 0 {
				t.Fatalf("database %q: negative wait before retry %d", name, k)
			}
		}
	}
	seen := map[string]bool{}
	for _, u := range cfg.Users {
		if u.Name == "" || seen[u.Name] {
			t.Fatalf("bad or duplicate user %q", u.Name)
		}
		seen[u.Name] = true
		if cfg.User(u.Name) == nil {
			t.Fatalf("User(%q) = nil", u.Name)
		}
	}
	if ro := cfg.Listen.ReadOnlyAddress; ro != "" && ro == cfg.Listen.Address && !strings.HasSuffix(ro, ":0") {
		t.Fatalf("read_only_address %q is listen.address", ro)
	}
	if cfg.Listen.Address == "" || cfg.Limits.ClientLoginTimeout <= 0 || cfg.Limits.MaxClientConnections < 1 {
		t.Fatalf("bad limits or listen: %+v %+v", cfg.Listen, cfg.Limits)
	}
}
