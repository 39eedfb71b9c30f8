package proxy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/console"
)

// Operator is what the console and the HTTP API need from the process
// around the proxy: the daemon reloads the file and shuts down. Version
// is shown by SHOW VERSION.
type Operator struct {
	Version string
	// Reload reads the configuration file again and applies it.
	Reload func() error
	// Shutdown stops sluice; with waitForClients it waits for clients to
	// leave (PgBouncer's SHUTDOWN WAIT_FOR_CLIENTS), else it ends them
	// after shutdown_timeout. It must return at once (it is called from
	// a console session, which the shutdown ends).
	Shutdown func(waitForClients bool)
	// Upgrade starts the new binary and hands it the listeners (UPGRADE,
	// POST /api/upgrade); it returns once the new process serves (nil:
	// this process then stops accepting and drains) or has failed (this
	// process serves on). nil when sluice cannot upgrade itself.
	Upgrade func() error
	// Peers lists the live instances of the fleet (SHOW PEERS, GET
	// /api/peers); nil without a cluster section.
	Peers func() []console.Peer
	// Failover lists the fleet's failover decisions and elections (SHOW
	// FAILOVER, GET /api/failover); nil without a cluster section.
	Failover func() []console.Failover
}

// SetOperator installs op (the daemon calls it after Start).
func (s *Server) SetOperator(op Operator) { s.op.Store(&op) }

func (s *Server) operator() Operator {
	if op := s.op.Load(); op != nil {
		return *op
	}
	return Operator{Version: "dev"}
}

// Exec runs one console command: a SHOW is rendered from a Snapshot,
// the others call the control methods (control.go) or the operator.
// Errors are *console.Error values a client can be shown as they are.
// ctx bounds the commands that wait (PAUSE, WAIT_CLOSE, SWITCHOVER).
func (s *Server) Exec(ctx context.Context, cmd console.Command) (*console.Result, error) {
	if cmd.Verb == console.Show {
		return console.View(cmd.Arg, s.Snapshot())
	}
	if cmd.Verb == console.Set {
		return setParam(cmd)
	}
	if cmd.Arg != "" && s.Config().Databases[cmd.Arg] == nil { // the parser requires one for DISABLE, ENABLE, SWITCHOVER
		return nil, &console.Error{Code: console.CodeUndefinedObject, Msg: fmt.Sprintf("database %q does not exist (it is not configured in sluice)", cmd.Arg)}
	}
	tag := string(cmd.Verb)
	var err error
	switch cmd.Verb {
	case console.Pause:
		err = s.Pause(ctx, cmd.Arg)
	case console.Resume:
		err = s.Resume(cmd.Arg)
	case console.Reconnect:
		err = s.Reconnect(cmd.Arg)
	case console.Kill:
		err = s.Kill(cmd.Arg)
	case console.KillClient:
		err = s.KillClient(cmd.ClientID)
	case console.Disable:
		err = s.Disable(cmd.Arg)
	case console.Enable:
		err = s.Enable(cmd.Arg)
	case console.WaitClose:
		err = s.WaitClose(ctx, cmd.Arg)
	case console.Switchover:
		err = s.Switchover(ctx, cmd.Arg, cmd.Host)
	case console.Reload:
		op := s.operator()
		if op.Reload == nil {
			err = errors.New("this sluice was started without a configuration file to reload")
		} else {
			err = op.Reload()
		}
	case console.Upgrade:
		op := s.operator()
		if op.Upgrade == nil {
			err = errors.New("this sluice cannot upgrade itself: only 'sluice run' can")
		} else {
			err = op.Upgrade()
		}
	case console.Shutdown:
		op := s.operator()
		if op.Shutdown == nil {
			err = errors.New("this sluice cannot be shut down from the console")
		} else {
			op.Shutdown(cmd.WaitForClients)
		}
	default:
		return nil, &console.Error{Code: console.CodeInvalidCommand, Msg: fmt.Sprintf("invalid command '%s', use SHOW HELP;", cmd.Verb)}
	}
	if err != nil {
		return nil, commandError(cmd.Verb, err)
	}
	return &console.Result{Tag: tag}, nil
}

// commandError turns a control method's error into what a client sees.
func commandError(v console.Verb, err error) *console.Error {
	var ce *console.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &console.Error{Code: "57014", Msg: fmt.Sprintf("%s was interrupted before it finished: %v", v, err)}
	}
	return &console.Error{Code: console.CodeObjectInUse, Msg: fmt.Sprintf("%s failed: %v", v, err)}
}

// setParam answers SET as PgBouncer does for the parameters drivers set
// on connect (ignored, with a notice); other settings are the file's.
func setParam(cmd console.Command) (*console.Result, error) {
	switch cmd.Arg {
	case "client_encoding", "default_transaction_isolation", "standard_conforming_strings", "datestyle", "timezone",
		"application_name", "extra_float_digits":
		return &console.Result{Tag: "SET", Notice: "SET ignored"}, nil
	}
	return nil, &console.Error{Code: console.CodeFeatureNotSupported,
		Msg: fmt.Sprintf("SET %s is not supported by sluice's console: change the configuration file and run RELOAD", cmd.Arg)}
}

// configView lists the process-wide settings for SHOW CONFIG, with their
// defaults, then PgBouncer's names of the two limits pgbouncer_exporter
// reads. Secrets (admin.api_token, cluster.etcd.password) are never listed; users and databases
// have views of their own.
func configView(cfg *config.Config) []console.Setting {
	def := config.Defaults()
	var out []console.Setting
	var walk func(prefix string, v, d reflect.Value)
	walk = func(prefix string, v, d reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fv, fd := v.Field(i), d.Field(i)
			switch {
			case key == "users" || key == "databases" || key == "access":
				continue
			case fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[config.Duration]():
				walk(key, fv, fd)
				continue
			}
			val, dv := fmt.Sprint(fv.Interface()), fmt.Sprint(fd.Interface())
			if key == "admin.api_token" || key == "cluster.etcd.password" {
				if val != "" {
					val = "(set)"
				}
			}
			out = append(out, console.Setting{Key: key, Value: val, Default: dv, Changeable: reloadable(key)})
		}
	}
	walk("", reflect.ValueOf(*cfg), reflect.ValueOf(*def))
	out = append(out,
		console.Setting{Key: "max_client_conn", Value: fmt.Sprint(cfg.Limits.MaxClientConnections),
			Default: fmt.Sprint(config.DefaultMaxClientConnections), Changeable: true},
		console.Setting{Key: "max_user_connections", Value: "0", Default: "0", Changeable: false})
	return out
}

// reloadable reports whether RELOAD applies a key (listeners and the
// fleet's settings need a restart).
func reloadable(key string) bool {
	return !strings.HasPrefix(key, "listen.") && key != "admin.address" && !strings.HasPrefix(key, "admin.tls_") &&
		!strings.HasPrefix(key, "cluster.")
}
