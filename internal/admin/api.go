package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/console"
)

// api serves /readyz and /api/*: the console's views as JSON (GET) and
// its commands (POST), which always need the bearer token.
type api struct {
	proxy   Proxy
	healthy func() bool
	fleet   func() *console.FleetHealth
	log     *slog.Logger
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// authorized checks the bearer token for a mutating call (always) or a
// read (when admin.api_read_requires_token). On refusal it has answered:
// 403 when no token is configured (a mutating call cannot be allowed),
// 401 when the request has no token or another one. The comparison
// takes the same time whatever the token sent.
func (a *api) authorized(w http.ResponseWriter, r *http.Request, mutating bool) bool {
	ac := a.proxy.Config().Admin
	if !mutating && !ac.APIReadRequiresToken {
		return true
	}
	if ac.APIToken == "" {
		writeError(w, http.StatusForbidden, "the HTTP API's commands are disabled: set admin.api_token (or admin.api_token_file) in the configuration and reload")
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(ac.APIToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <admin.api_token>)")
		return false
	}
	return true
}

// readyz is 200 when every database can be served, else 503; the body
// names each database and, when not ready, why. In a fleet it also
// shows the instance's standing ("cluster") and, while etcd is not
// reachable, why it is degraded ("degraded").
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.healthy() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	dbs := a.proxy.Readiness(ctx)
	ready := true
	var notReady []string
	for _, d := range dbs {
		if !d.Ready {
			ready = false
			notReady = append(notReady, d.Database)
		}
	}
	body := map[string]any{"ready": ready, "databases": dbs}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		body["reason"] = "not ready: " + strings.Join(notReady, ", ")
	}
	// The fleet's state is reported but never makes the instance
	// unready: with etcd unreachable it serves its clients as before
	// (only fleet features wait), so a load balancer should keep
	// sending it clients.
	if a.fleet != nil {
		if fh := a.fleet(); fh != nil {
			body["cluster"] = fh
			if !fh.EtcdUp {
				body["degraded"] = "cluster: " + fh.Reason
			}
		}
	}
	writeJSON(w, status, body)
}

// commands maps the API's command names to the console's verbs.
var commands = map[string]console.Verb{
	"pause": console.Pause, "resume": console.Resume, "reconnect": console.Reconnect, "kill": console.Kill,
	"kill_client": console.KillClient, "disable": console.Disable, "enable": console.Enable, "wait_close": console.WaitClose,
	"reload": console.Reload, "shutdown": console.Shutdown, "switchover": console.Switchover, "upgrade": console.Upgrade,
}

// read serves GET /api/{view}: the console's view as JSON.
func (a *api) read(w http.ResponseWriter, r *http.Request) {
	view := r.PathValue("view")
	if _, isCommand := commands[view]; isCommand {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "%s is a command: use POST /api/%s", view, view)
		return
	}
	var pick func(*console.Snapshot) any
	switch view {
	case "pools":
		pick = func(s *console.Snapshot) any { return s.Pools }
	case "clients":
		pick = func(s *console.Snapshot) any { return s.Clients }
	case "servers":
		pick = func(s *console.Snapshot) any { return s.Servers }
	case "stats":
		pick = func(s *console.Snapshot) any { return s.Stats }
	case "databases":
		pick = func(s *console.Snapshot) any { return s.Databases }
	case "users":
		pick = func(s *console.Snapshot) any { return s.Users }
	case "config":
		pick = func(s *console.Snapshot) any { return s.Config }
	case "topology":
		pick = func(s *console.Snapshot) any { return s.Hosts }
	case "pins":
		pick = func(s *console.Snapshot) any { return s.Pins }
	case "peers":
		pick = func(s *console.Snapshot) any { return s.Peers }
	case "failover":
		pick = func(s *console.Snapshot) any { return s.Failover }
	case "version":
		pick = func(s *console.Snapshot) any { return map[string]string{"version": s.Version} }
	case "lists", "state":
		pick = func(s *console.Snapshot) any { return keyValues(strings.ToUpper(view), s) }
	default:
		a.notFound(w, r)
		return
	}
	if !a.authorized(w, r, false) {
		return
	}
	writeJSON(w, http.StatusOK, pick(a.proxy.Snapshot()))
}

// keyValues renders a two-column view (SHOW LISTS, SHOW STATE) as an object.
func keyValues(view string, s *console.Snapshot) map[string]any {
	res, _ := console.View(view, s)
	out := make(map[string]any, len(res.Rows))
	for _, row := range res.Rows {
		out[row[0].(string)] = row[1]
	}
	return out
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such API endpoint: %s %s", r.Method, r.URL.Path)
}

// commandParams are a command's arguments, from a JSON body or the query.
type commandParams struct {
	DB             string `json:"db"`
	Host           string `json:"host"`
	ID             any    `json:"id"`
	WaitForClients bool   `json:"wait_for_clients"`
}

// command serves POST /api/{command}.
func (a *api) command(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("command")
	verb, ok := commands[name]
	if !ok {
		a.notFound(w, r)
		return
	}
	if !a.authorized(w, r, true) {
		return
	}
	var p commandParams
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: %v", err)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // an id stays digits (1000000, not 1e+06)
		if err := dec.Decode(&p); err != nil {
			writeError(w, http.StatusBadRequest, "the body must be a JSON object such as {\"db\": \"appdb\"}: %v", err)
			return
		}
	}
	q := r.URL.Query()
	if v := q.Get("db"); v != "" {
		p.DB = v
	}
	if v := q.Get("host"); v != "" {
		p.Host = v
	}
	if v := q.Get("id"); v != "" {
		p.ID = v
	}
	if v := q.Get("wait_for_clients"); v == "true" || v == "1" {
		p.WaitForClients = true
	}
	cmd := console.Command{Verb: verb, Arg: p.DB, Host: p.Host, WaitForClients: p.WaitForClients}
	switch verb {
	case console.Disable, console.Enable, console.Switchover:
		if p.DB == "" {
			writeError(w, http.StatusBadRequest, "%s needs a database: ?db=NAME or {\"db\": \"NAME\"}", name)
			return
		}
	case console.KillClient:
		id, err := strconv.ParseUint(strings.Trim(fmt.Sprint(p.ID), `"`), 10, 64)
		if p.ID == nil || err != nil {
			writeError(w, http.StatusBadRequest, "kill_client needs a client id (SHOW CLIENTS' id): ?id=N or {\"id\": N}")
			return
		}
		cmd.ClientID = id
	}
	a.log.Info("admin API command", "command", name, "db", p.DB, "remote", r.RemoteAddr)
	if _, err := a.proxy.Exec(r.Context(), cmd); err != nil {
		var ce *console.Error
		if !errors.As(err, &ce) {
			ce = &console.Error{Code: console.CodeInternal, Msg: err.Error()}
		}
		writeJSON(w, statusFor(ce.Code), map[string]string{"error": ce.Msg, "sqlstate": ce.Code})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "command": string(verb), "db": p.DB})
}

// statusFor maps a console error's SQLSTATE to an HTTP status.
func statusFor(code string) int {
	switch code {
	case console.CodeUndefinedObject, console.CodeInvalidCommand:
		return http.StatusBadRequest
	case console.CodeFeatureNotSupported:
		return http.StatusNotImplemented
	case console.CodeObjectInUse:
		return http.StatusConflict
	case "57014":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
