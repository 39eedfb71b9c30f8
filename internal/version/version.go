// Package version holds sluice's version and the commit it was built
// from, so that `sluice version`, `sluice --version`, SHOW VERSION, the
// metrics (sluice_build_info) and the fleet's member records agree.
//
// A release build sets both with the linker (the Makefile's LDFLAGS):
//
//	-X github.com/sluice-proxy/sluice/internal/version.Version=$(git describe --tags --always --dirty)
//	-X github.com/sluice-proxy/sluice/internal/version.Commit=$(git rev-parse --short=12 HEAD)
//
// Without them (a plain `go build`, `go test`, `go install`), the
// version is what the go command recorded: the module version for
// `go install github.com/sluice-proxy/sluice/cmd/sluice@v0.2.0`, else
// DevVersion; the commit is the VCS revision go build stamped, if any.
package version

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Release is the tag this tree is released as; the release manager
// creates it (git tag v0.2.0) and moves Release to the next version
// with "-dev" after the release.
const Release = "v0.2.0"

// DevVersion is the version of a build that was given none.
const DevVersion = Release + "-dev"

// Version and Commit are set by the linker (-X) or, when it set none,
// by init from the build information. Both are read-only after init.
var (
	Version string
	Commit  string
)

func init() {
	info, _ := debug.ReadBuildInfo()
	Version, Commit = resolve(Version, Commit, info)
}

// semverTag matches what `git describe --tags` prints once a vX.Y.Z tag
// exists: the tag itself, or tag-N-gHASH, each maybe with -dirty.
var semverTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`)

// resolve decides the version and commit from what the linker set (v, c)
// and the build information (nil when the binary has none).
//
// `git describe --tags --always` prints only an abbreviated hash while no
// tag exists (a fresh clone without tags, a CI checkout with depth 1);
// that is not a version, so the version is then DevVersion and the hash
// becomes the commit if none was set.
func resolve(v, c string, info *debug.BuildInfo) (string, string) {
	if c == "" && info != nil {
		c = vcsRevision(info)
	}
	switch {
	case semverTag.MatchString(v):
		return v, c
	case v != "":
		switch {
		case c == "":
			c = v
		case strings.HasSuffix(v, "-dirty") && !strings.HasSuffix(c, "-dirty"):
			c += "-dirty" // describe saw uncommitted changes; rev-parse cannot say
		}
		return DevVersion, c
	case info != nil && semverTag.MatchString(info.Main.Version):
		return info.Main.Version, c
	default:
		return DevVersion, c
	}
}

// vcsRevision is the commit go build stamped (-buildvcs, the default in
// a git checkout), shortened like git's own and marked -dirty when the
// tree had uncommitted changes; "" when none was stamped.
func vcsRevision(info *debug.BuildInfo) string {
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && modified {
		rev += "-dirty"
	}
	return rev
}

// String is the line `sluice version` prints: the version, the commit
// ("unknown" when the build recorded none) and the Go release with the
// platform, e.g. "sluice v0.2.0 (commit 5be5bd7c1a2b, go1.26.8 linux/amd64)".
func String() string {
	c := Commit
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("sluice %s (commit %s, %s %s/%s)", Version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
