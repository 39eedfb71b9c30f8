package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var (
	containerfile = filepath.Join("..", "..", "deploy", "container", "Containerfile")
	repoRoot      = filepath.Join("..", "..")
)

// rulesFromRepo reads what the rules compare with: go.mod's Go version and
// the example config's ports.
func rulesFromRepo(t *testing.T) containerRules {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, m, "go.mod's go directive")
	raw, err := os.ReadFile(exampleConfig)
	require.NoError(t, err)
	var cfg struct {
		Listen struct{ Address string } `yaml:"listen"`
		Admin  struct{ Address string } `yaml:"admin"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	_, listenPort, err := net.SplitHostPort(cfg.Listen.Address)
	require.NoError(t, err)
	_, adminPort, err := net.SplitHostPort(cfg.Admin.Address)
	require.NoError(t, err)
	return containerRules{goVersion: string(m[1]), adminPort: adminPort, listenPort: listenPort}
}

// The Containerfile passes the rules. (podman is installable here but
// cannot reach a registry nor run a container, so the image itself is
// built by TestContainerImageBuilds only where it can.)
func TestContainerfileFollowsTheRules(t *testing.T) {
	text, err := os.ReadFile(containerfile)
	require.NoError(t, err)
	require.Empty(t, rulesFromRepo(t).check(string(text)))

	// What the final stage copies from the build context exists and is
	// not left out of it by .dockerignore.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	stages := parseContainerfile(string(text))
	for _, in := range stages[len(stages)-1].body {
		if in.cmd != "COPY" || strings.Contains(in.args, "--from=") {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			_, err := os.Stat(filepath.Join(repoRoot, src))
			require.NoError(t, err, "line %d copies %s", in.line, src)
			require.NotContains(t, strings.Fields(string(ignore)), src, ".dockerignore leaves out %s", src)
		}
	}
}

// The build stage's RUN commands, run outside a container (with /out/
// moved to a temp dir and the stage's ENV), build a sluice that reports
// the version and commit given as build arguments: the ldflags in the
// Containerfile name real variables and are quoted right.
func TestContainerBuildCommandsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	text, err := os.ReadFile(containerfile)
	require.NoError(t, err)
	out := t.TempDir() + "/"
	env := append(os.Environ(), "VERSION=v0.2.0", "COMMIT=0123456789ab")
	var ran bool
	for _, in := range parseContainerfile(string(text))[0].body {
		switch in.cmd {
		case "ENV":
			env = append(env, strings.Fields(in.args)...)
		case "RUN":
			cmd := exec.Command("sh", "-c", strings.ReplaceAll(in.args, "/out/", out))
			cmd.Dir, cmd.Env = repoRoot, env
			got, err := cmd.CombinedOutput()
			require.NoError(t, err, "line %d: %s", in.line, got)
			if strings.Contains(in.args, "go build") {
				require.Contains(t, string(got), "sluice v0.2.0 (commit 0123456789ab, ")
				ran = true
			}
		}
	}
	require.True(t, ran, "the build stage runs go build")
}

// Each rule catches what it is there for: the Containerfile with one
// thing broken gets that one problem.
func TestContainerRulesCatchEachMistake(t *testing.T) {
	raw, err := os.ReadFile(containerfile)
	require.NoError(t, err)
	good := string(raw)
	rules := rulesFromRepo(t)
	for _, c := range []struct{ old, new, problem string }{
		{"FROM gcr.io/distroless/static-debian12:nonroot", "FROM gcr.io/distroless/static-debian12", "pin a tag or digest"},
		{"FROM gcr.io/distroless/static-debian12:nonroot", "FROM gcr.io/distroless/static-debian12:latest", "do not use latest"},
		{"FROM gcr.io/distroless/static-debian12:nonroot", "FROM docker.io/library/debian:bookworm-slim", "not a static base"},
		{"golang:1.26.8-bookworm", "golang:1.25-bookworm", "is not Go 1.26.8"},
		{"USER 65532:65532\n", "", "has no USER"},
		{"USER 65532:65532\n", "USER root\n", "USER root: run as a non-root user"},
		{"COPY LICENSE /usr/share/doc/sluice/LICENSE", "ADD https://example.com/LICENSE /usr/share/doc/sluice/LICENSE", "never ADD a URL"},
		{"CGO_ENABLED=0", "CGO_ENABLED=1", "must set CGO_ENABLED=0"},
		{"go build -trimpath", "go build", "lacks -trimpath"},
		{"--from=build", "--from=builder", "no earlier stage of that name"},
		{"HEALTHCHECK --interval", "#HEALTHCHECK --interval", "no HEALTHCHECK"},
		{"/readyz\"]", "/healthz\"]", "HEALTHCHECK must run"},
		{`CMD ["/usr/local/bin/sluice", "healthcheck"`, `CMD /usr/local/bin/sluice healthcheck`, "HEALTHCHECK must run"},
		{`ENTRYPOINT ["/usr/local/bin/sluice"]`, `ENTRYPOINT /usr/local/bin/sluice`, "ENTRYPOINT must be"},
		{`CMD ["run", "--config", "/etc/sluice/sluice.yaml"]`, `CMD ["run"]`, "CMD must be"},
		{"EXPOSE 6432 9930", "EXPOSE 6432", "EXPOSE lacks 9930"},
		{"COPY deploy/sluice.yaml /etc/sluice/sluice.yaml", "COPY sluice.yaml /etc/sluice/sluice.yaml", "does not COPY deploy/sluice.yaml"},
	} {
		require.Contains(t, good, c.old)
		bad := strings.Replace(good, c.old, c.new, 1)
		problems := strings.Join(rules.check(bad), "\n")
		require.Contains(t, problems, c.problem, "after replacing %q with %q", c.old, c.new)
	}
	require.Contains(t, strings.Join(rules.check("FROM scratch\nCOPY sluice /\n"), "\n"), "not multi-stage")
}

// Where podman (or docker) has the base images, the image is built and
// its configuration checked. This machine cannot pull them (no registry
// is reachable) nor run a container (crun may not set rlimits here), so
// the test skips here and says why.
func TestContainerImageBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image")
	}
	tool, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("no podman on PATH (apt-get install -y podman); the Containerfile is checked by TestContainerfileFollowsTheRules")
	}
	text, err := os.ReadFile(containerfile)
	require.NoError(t, err)
	for _, st := range parseContainerfile(string(text)) {
		if err := exec.Command(tool, "image", "exists", st.image).Run(); err != nil {
			t.Skipf("base image %s is not in podman's local store (pull it to run this test; this machine reaches no registry)", st.image)
		}
	}
	tag := "localhost/sluice-test:" + strings.ToLower(t.Name())
	out, err := exec.Command(tool, "build", "--format", "docker", "-f", containerfile,
		"--build-arg", "VERSION=v0.2.0", "--build-arg", "COMMIT=0123456789ab", "-t", tag, repoRoot).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command(tool, "rmi", "-f", tag).Run() })
	out, err = exec.Command(tool, "image", "inspect", "--format", "{{json .Config}}", tag).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var cfg struct {
		User        string
		Entrypoint  []string
		Cmd         []string
		Healthcheck struct{ Test []string }
	}
	require.NoError(t, json.Unmarshal(out, &cfg), "%s", out)
	require.Equal(t, "65532:65532", cfg.User)
	require.Equal(t, []string{"/usr/local/bin/sluice"}, cfg.Entrypoint)
	require.Equal(t, []string{"run", "--config", "/etc/sluice/sluice.yaml"}, cfg.Cmd)
	require.Contains(t, cfg.Healthcheck.Test, "healthcheck")
}
