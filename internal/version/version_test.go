package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func buildInfo(mainVersion string, settings ...string) *debug.BuildInfo {
	info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/sluice-proxy/sluice", Version: mainVersion}}
	for i := 0; i+1 < len(settings); i += 2 {
		info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return info
}

func TestResolve(t *testing.T) {
	const rev = "5be5bd7c1a2b3c4d5e6f708192a3b4c5d6e7f809"
	for _, c := range []struct {
		name         string
		v, c         string
		info         *debug.BuildInfo
		wantV, wantC string
	}{
		{"release build on the tag", "v0.2.0", "5be5bd7c1a2b", nil, "v0.2.0", "5be5bd7c1a2b"},
		{"release build after the tag, dirty", "v0.2.0-3-g5be5bd7-dirty", "5be5bd7c1a2b", nil, "v0.2.0-3-g5be5bd7-dirty", "5be5bd7c1a2b"},
		{"make build before any tag: describe prints a hash", "5be5bd7-dirty", "", nil, DevVersion, "5be5bd7-dirty"},
		{"a hash and a commit", "5be5bd7", "5be5bd7c1a2b", nil, DevVersion, "5be5bd7c1a2b"},
		{"a dirty hash and a commit", "5be5bd7-dirty", "5be5bd7c1a2b", nil, DevVersion, "5be5bd7c1a2b-dirty"},
		{"plain go build in a checkout", "", "", buildInfo("(devel)", "vcs", "git", "vcs.revision", rev, "vcs.modified", "false"), DevVersion, "5be5bd7c1a2b"},
		{"plain go build with changes", "", "", buildInfo("(devel)", "vcs.revision", rev, "vcs.modified", "true"), DevVersion, "5be5bd7c1a2b-dirty"},
		{"plain go build, -buildvcs=false", "", "", buildInfo("(devel)"), DevVersion, ""},
		{"go install ...@v0.2.0", "", "", buildInfo("v0.2.0"), "v0.2.0", ""},
		{"go install of a pseudo-version", "", "", buildInfo("v0.2.1-0.20261207101749-5be5bd7c1a2b"), "v0.2.1-0.20261207101749-5be5bd7c1a2b", ""},
		{"linker version wins over the module's", "v0.3.0", "", buildInfo("v0.2.0", "vcs.revision", rev), "v0.3.0", "5be5bd7c1a2b"},
		{"no build information at all", "", "", nil, DevVersion, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, commit := resolve(c.v, c.c, c.info)
			require.Equal(t, c.wantV, v)
			require.Equal(t, c.wantC, commit)
			require.Regexp(t, semverTag, v, "always a semantic version")
		})
	}
}

func TestStringNamesVersionCommitAndGo(t *testing.T) {
	v, c := Version, Commit
	t.Cleanup(func() { Version, Commit = v, c })
	Version, Commit = "v0.2.0", "5be5bd7c1a2b"
	require.Equal(t, "sluice v0.2.0 (commit 5be5bd7c1a2b, "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+")", String())
	Commit = ""
	require.True(t, strings.HasPrefix(String(), "sluice v0.2.0 (commit unknown, go"), String())
}

func TestDevVersionIsThisReleasePlusDev(t *testing.T) {
	require.Regexp(t, `^v[0-9]+\.[0-9]+\.[0-9]+$`, Release)
	require.Equal(t, Release+"-dev", DevVersion)
}
