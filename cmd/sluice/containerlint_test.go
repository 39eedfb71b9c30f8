package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A Containerfile linter for the rules of hadolint that apply to sluice's
// image, plus sluice's own (the image must be what the docs promise). The
// image cannot be built on every machine (no registry, no container
// runtime), the file can always be checked.

// instruction is one Containerfile instruction with its continuation
// lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is a FROM and what follows it.
type stage struct {
	image, name string
	body        []instruction
}

// parseContainerfile splits the file into stages, dropping comments and
// joining lines that end in a backslash.
func parseContainerfile(text string) []stage {
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{image: f[len(f)-1]}
			for i, w := range f {
				if strings.HasPrefix(w, "--") {
					continue
				}
				st.image = w
				if i+2 < len(f) && strings.EqualFold(f[i+1], "AS") {
					st.name = f[i+2]
				}
				break
			}
			stages = append(stages, st)
		}
		if len(stages) > 0 {
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	for i, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if cur.Len() == 0 {
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			start = i + 1
		} else if strings.HasPrefix(t, "#") {
			continue // a comment inside a continued instruction
		}
		if c, ok := strings.CutSuffix(t, "\\"); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(t)
		flush()
	}
	flush()
	return stages
}

// execForm decodes a JSON-array argument (exec form), nil if it is not one.
func execForm(args string) []string {
	var v []string
	if json.Unmarshal([]byte(args), &v) != nil {
		return nil
	}
	return v
}

// containerRules are hadolint's rules that apply here plus sluice's own:
// what the image must be, checked on the file since no image can be built
// on every machine.
type containerRules struct {
	goVersion  string // go.mod's go directive: the builder must match (GOTOOLCHAIN=local)
	adminPort  string // the example config's admin port: the health check's
	listenPort string
}

func (r containerRules) check(text string) []string {
	var problems []string
	bad := func(line int, format string, a ...any) {
		problems = append(problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, a...))
	}
	stages := parseContainerfile(text)
	if len(stages) < 2 {
		return []string{"not multi-stage: build in one stage, copy the binary into a small final one"}
	}
	names := map[string]bool{}
	for _, st := range stages {
		from := st.body[0]
		switch {
		case names[st.image] || st.image == "scratch":
		case strings.Contains(st.image, "@sha256:"):
		case !regexp.MustCompile(`:[^/:]+$`).MatchString(st.image):
			bad(from.line, "FROM %s: pin a tag or digest (DL3006)", st.image)
		case strings.HasSuffix(st.image, ":latest"):
			bad(from.line, "FROM %s: do not use latest (DL3007)", st.image)
		}
		if st.name != "" {
			names[st.name] = true
		}
		for _, in := range st.body {
			switch in.cmd {
			case "ADD":
				bad(in.line, "ADD: use COPY (DL3020); never ADD a URL (fetch it in a RUN with a checksum)")
			case "MAINTAINER":
				bad(in.line, "MAINTAINER is deprecated (DL4000)")
			case "COPY":
				if m := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.args); m != nil && !names[m[1]] {
					bad(in.line, "COPY --from=%s: no earlier stage of that name", m[1])
				}
			case "RUN":
				if regexp.MustCompile(`(^|[;&|]\s*)cd\s`).MatchString(in.args) {
					bad(in.line, "RUN cd: use WORKDIR (DL3003)")
				}
			}
		}
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.Contains(build.image, "golang:"+r.goVersion) {
		bad(build.body[0].line, "the builder %s is not Go %s (go.mod's go directive)", build.image, r.goVersion)
	}
	var buildText strings.Builder
	for _, in := range build.body {
		if in.cmd == "ENV" || in.cmd == "RUN" || in.cmd == "ARG" {
			buildText.WriteString(in.args + "\n")
		}
	}
	bt := buildText.String()
	if !regexp.MustCompile(`CGO_ENABLED=0`).MatchString(bt) {
		bad(build.body[0].line, "the build stage must set CGO_ENABLED=0 (a static binary for a base without libc)")
	}
	for _, want := range []string{"-trimpath", "internal/version.Version=", "internal/version.Commit=", "./cmd/sluice"} {
		if !strings.Contains(bt, want) {
			bad(build.body[0].line, "the build stage's go build lacks %s", want)
		}
	}
	if strings.Contains(final.image, "golang") || strings.Contains(final.image, "debian:") || strings.Contains(final.image, "ubuntu") {
		bad(final.body[0].line, "the final stage %s is not a static base (distroless/static or scratch)", final.image)
	}
	var user, healthcheck, entrypoint, command *instruction
	var exposed []string
	copied := map[string]string{}
	for i := range final.body {
		in := &final.body[i]
		switch in.cmd {
		case "USER":
			user = in
		case "HEALTHCHECK":
			healthcheck = in
		case "ENTRYPOINT":
			entrypoint = in
		case "CMD":
			command = in
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "COPY":
			f := strings.Fields(in.args)
			copied[f[len(f)-1]] = f[len(f)-2]
		}
	}
	if user == nil {
		bad(final.body[0].line, "the final stage has no USER: the image would run as root (DL3002)")
	} else if u, _, _ := strings.Cut(user.args, ":"); u == "root" || u == "0" {
		bad(user.line, "USER %s: run as a non-root user (DL3002)", user.args)
	}
	if entrypoint == nil || !slices.Equal(execForm(entrypoint.args), []string{"/usr/local/bin/sluice"}) {
		bad(final.body[0].line, `ENTRYPOINT must be ["/usr/local/bin/sluice"] (exec form, so SIGTERM reaches sluice)`)
	}
	if command == nil || !slices.Equal(execForm(command.args), []string{"run", "--config", "/etc/sluice/sluice.yaml"}) {
		bad(final.body[0].line, `CMD must be ["run", "--config", "/etc/sluice/sluice.yaml"]`)
	}
	if copied["/usr/local/bin/sluice"] == "" {
		bad(final.body[0].line, "the final stage does not COPY the binary to /usr/local/bin/sluice")
	}
	if copied["/etc/sluice/sluice.yaml"] != "deploy/sluice.yaml" {
		bad(final.body[0].line, "the final stage does not COPY deploy/sluice.yaml to /etc/sluice/sluice.yaml")
	}
	if healthcheck == nil {
		bad(final.body[0].line, "no HEALTHCHECK")
	} else {
		_, cmd, _ := strings.Cut(healthcheck.args, "CMD ")
		argv := execForm(strings.TrimSpace(cmd))
		want := []string{"/usr/local/bin/sluice", "healthcheck", "--url", "http://127.0.0.1:" + r.adminPort + "/readyz"}
		if !slices.Equal(argv, want) {
			bad(healthcheck.line, "HEALTHCHECK must run %q in exec form (the base has no shell or curl), not %q", want, cmd)
		}
	}
	for _, p := range []string{r.listenPort, r.adminPort} {
		if !slices.Contains(exposed, p) {
			bad(final.body[0].line, "EXPOSE lacks %s (the example config's listen and admin ports)", p)
		}
	}
	return problems
}
