package pgserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// serverBinaries must all live in one directory: initdb locates postgres
// next to itself, and pg_ctl does the same.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// debianRoot is where Debian/Ubuntu install versioned server binaries; they
// are not on $PATH there (only client wrappers are).
const debianRoot = "/usr/lib/postgresql"

// ErrNoBinaries is wrapped by FindBinDir's error so callers can tell a
// missing installation from other failures.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found")

// FindBinDir returns the directory holding initdb, pg_ctl and postgres:
// the directory of initdb on $PATH (symlinks resolved, so a
// /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb link yields the
// real directory, which also holds pgbench), else the highest-versioned
// /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	return findBinDir(exec.LookPath, debianRoot)
}

func findBinDir(lookPath func(string) (string, error), root string) (string, error) {
	if p, err := lookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if hasServerBinaries(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	for _, dir := range versionedBinDirs(root) {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", errNoBinaries(root)
}

func errNoBinaries(root string) error {
	return &noBinariesError{root: root}
}

type noBinariesError struct{ root string }

func (e *noBinariesError) Error() string {
	return "pgserver: " + ErrNoBinaries.Error() + " (need initdb, pg_ctl and postgres in $PATH or " +
		e.root + "/*/bin); install them with: apt-get install -y postgresql"
}

func (e *noBinariesError) Unwrap() error { return ErrNoBinaries }

// versionedBinDirs lists root/<version>/bin, highest version first
// ("16" > "9.6"; versions compare numerically component by component).
func versionedBinDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	sort.SliceStable(versions, func(i, j int) bool { return versionLess(versions[j], versions[i]) })
	dirs := make([]string, 0, len(versions))
	for _, v := range versions {
		dirs = append(dirs, filepath.Join(root, v, "bin"))
	}
	return dirs
}

// versionLess compares dotted numeric versions; non-numeric parts sort low.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		x, y := -1, -1
		if i < len(as) {
			if n, err := strconv.Atoi(as[i]); err == nil {
				x = n
			}
		}
		if i < len(bs) {
			if n, err := strconv.Atoi(bs[i]); err == nil {
				y = n
			}
		}
		if x != y {
			return x < y
		}
	}
	return a < b
}

func hasServerBinaries(dir string) bool {
	for _, name := range serverBinaries {
		if !isExecutable(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
