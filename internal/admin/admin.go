// Package admin serves sluice's HTTP admin endpoint: /healthz, /livez and
// /readyz for load balancers and orchestrators, /metrics for Prometheus,
// the JSON API (/api/..., the console's views and commands) and, when
// configured, Go's profiler. It owns one goroutine (the HTTP server)
// between Start and Close.
package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/console"
)

// Proxy is what the API reads and commands (a *proxy.Server).
type Proxy interface {
	Snapshot() *console.Snapshot
	Exec(ctx context.Context, cmd console.Command) (*console.Result, error)
	Readiness(ctx context.Context) []console.Readiness
	// Config is the configuration in force: the token, whether reads
	// need it and pprof are read from it at each request, so a reload
	// changes them.
	Config() *config.Config
}

// Options configure Start.
type Options struct {
	Address  string
	Registry *prometheus.Registry
	// Healthy reports whether sluice is serving (/healthz 200) or
	// shutting down (503).
	Healthy func() bool
	// Proxy serves /readyz and /api; nil leaves them out (404).
	Proxy Proxy
	// Dashboard, when not nil, serves the live page at / and its data at
	// /dashboard.json (internal/dashboard).
	Dashboard http.Handler
	// Fleet, when not nil, reports the instance's standing in the fleet
	// for /readyz (nil result: no cluster section).
	Fleet func() *console.FleetHealth
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	Log                     *slog.Logger
	// Inherited, when not nil, is the listening socket to serve instead
	// of binding Address: the previous process's, during an upgrade.
	// StartWith owns it (and closes it).
	Inherited *os.File
}

// Server is the admin HTTP server.
type Server struct {
	http *http.Server
	ln   net.Listener
	tcp  *net.TCPListener // ln without TLS, the socket an upgrade hands over
	done chan struct{}
	// handedOver is set by StopAccepting: Serve's error is expected.
	handedOver atomic.Bool
}

// Start listens on addr and serves until Close. healthy reports whether
// sluice is serving (200) or not (503). Kept for callers that need only
// /healthz and /metrics.
func Start(addr string, reg *prometheus.Registry, healthy func() bool, log *slog.Logger) (*Server, error) {
	return StartWith(Options{Address: addr, Registry: reg, Healthy: healthy, Log: log})
}

// StartWith listens on o.Address and serves until Close.
func StartWith(o Options) (*Server, error) {
	var tlsCfg *tls.Config
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, err
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := listen(o)
	if err != nil {
		return nil, err
	}
	tcp, _ := ln.(*net.TCPListener)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	if o.Dashboard != nil {
		mux.Handle("GET /{$}", o.Dashboard)
		mux.Handle("GET /dashboard.json", o.Dashboard)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !o.Healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("shutting down\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n")) // the process serves HTTP: it is alive
	})
	if o.Proxy != nil {
		a := &api{proxy: o.Proxy, healthy: o.Healthy, fleet: o.Fleet, log: o.Log}
		mux.HandleFunc("GET /readyz", a.readyz)
		mux.HandleFunc("GET /api/{view}", a.read)
		mux.HandleFunc("POST /api/{command}", a.command)
		mux.HandleFunc("/api/", a.notFound)
		prof := http.NewServeMux()
		prof.HandleFunc("/debug/pprof/", pprof.Index)
		prof.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
		prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			if !o.Proxy.Config().Admin.Pprof {
				http.NotFound(w, r) // admin.pprof is off
				return
			}
			prof.ServeHTTP(w, r)
		})
	}
	s := &Server{
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		tcp:  tcp,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !s.handedOver.Load() {
			o.Log.Error("admin server failed", "error", err)
		}
	}()
	o.Log.Info("admin endpoint listening", "address", ln.Addr().String(), "tls", tlsCfg != nil)
	return s, nil
}

func listen(o Options) (net.Listener, error) {
	if o.Inherited == nil {
		return net.Listen("tcp", o.Address)
	}
	defer o.Inherited.Close()
	ln, err := net.FileListener(o.Inherited)
	if err != nil {
		return nil, fmt.Errorf("inherited admin socket: %w", err)
	}
	return ln, nil
}

// ListenerFile duplicates the listening socket for the process an upgrade
// starts; the caller owns and closes the file.
func (s *Server) ListenerFile() (*os.File, error) {
	if s.tcp == nil {
		return nil, fmt.Errorf("the admin listener is a %T", s.ln)
	}
	return s.tcp.File()
}

// StopAccepting closes the listening socket once another process serves
// it (an upgrade); requests in flight finish, Close follows.
func (s *Server) StopAccepting() {
	s.handedOver.Store(true)
	s.ln.Close()
}

// Addr is the address the admin server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and waits for its goroutine.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	<-s.done
}
