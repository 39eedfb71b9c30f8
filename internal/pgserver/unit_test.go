package pgserver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func fakeBinDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755))
	}
}

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	noPath := func(string) (string, error) { return "", errors.New("not found") }

	_, err := findBinDir(noPath, root)
	require.ErrorIs(t, err, ErrNoBinaries)
	require.ErrorContains(t, err, "apt-get install -y postgresql")

	fakeBinDir(t, filepath.Join(root, "9.6", "bin"), serverBinaries...)
	fakeBinDir(t, filepath.Join(root, "16", "bin"), serverBinaries...)
	fakeBinDir(t, filepath.Join(root, "17", "bin"), "initdb") // incomplete: skipped
	dir, err := findBinDir(noPath, root)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "16", "bin"), dir)

	// $PATH wins, with symlinks resolved to the real directory.
	real := filepath.Join(t.TempDir(), "real")
	fakeBinDir(t, real, serverBinaries...)
	linkDir := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(real, "initdb"), filepath.Join(linkDir, "initdb")))
	onPath := func(string) (string, error) { return filepath.Join(linkDir, "initdb"), nil }
	dir, err = findBinDir(onPath, root)
	require.NoError(t, err)
	require.Equal(t, real, dir)

	// initdb on $PATH without its siblings (e.g. a wrapper): fall back.
	lonely := t.TempDir()
	fakeBinDir(t, lonely, "initdb")
	dir, err = findBinDir(func(string) (string, error) { return filepath.Join(lonely, "initdb"), nil }, root)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "16", "bin"), dir)
}

func TestVersionLess(t *testing.T) {
	require.True(t, versionLess("9.6", "10"))
	require.True(t, versionLess("15", "16"))
	require.False(t, versionLess("16", "9.6"))
	require.True(t, versionLess("beta", "9"))
	require.False(t, versionLess("15", "15"))
}

func TestRenderConf(t *testing.T) {
	got := renderConf(5555, "/tmp/a b", map[string]string{"work_mem": "1MB", "application_name": `it's \x`})
	require.Equal(t, `# written by sluice internal/pgserver; later lines win
listen_addresses = '127.0.0.1'
port = '5555'
unix_socket_directories = '/tmp/a b'
max_connections = '300'
fsync = 'off'
synchronous_commit = 'off'
full_page_writes = 'off'
password_encryption = 'scram-sha-256'
logging_collector = 'off'
application_name = 'it''s \\x'
work_mem = '1MB'
`, got)
}

func TestDSN(t *testing.T) {
	c := &Cluster{Host: "127.0.0.1", Port: 6543}
	require.Equal(t, "host=127.0.0.1 port=6543 user=app password=pw dbname=appdb sslmode=disable", c.DSN("app", "pw", "appdb"))
	require.Equal(t, `host=127.0.0.1 port=6543 user=u password='a b\'c\\' dbname=d sslmode=disable`, c.DSN("u", `a b'c\`, "d"))
	require.Equal(t, "host=127.0.0.1 port=6543 user=u dbname=d sslmode=disable", c.DSN("u", "", "d"))
}

func TestQuote(t *testing.T) {
	require.Equal(t, `"a""b"`, QuoteIdent(`a"b`))
	require.Equal(t, `'it''s'`, QuoteLiteral(`it's`))
	require.Equal(t, `'ab'`, QuoteLiteral("a\x00b"))
}

func TestStopWithoutServer(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "data"), 0o755))
	// A stale pid file naming a process that is not our postmaster (us).
	require.NoError(t, os.WriteFile(filepath.Join(root, "data", "postmaster.pid"), []byte("1\n"), 0o600))
	c := &Cluster{root: root, DataDir: filepath.Join(root, "data"), BinDir: dir}
	require.False(t, c.isOurPostmaster(1))
	require.False(t, c.kill())
	_, err := os.Stat(root)
	require.NoError(t, err)
}
