// Package admin serves sluice's HTTP admin endpoint: /healthz for load
// balancers and orchestrators, /metrics for Prometheus. It owns one
// goroutine (the HTTP server) between Start and Close.
package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the admin HTTP server.
type Server struct {
	http *http.Server
	ln   net.Listener
	done chan struct{}
}

// Start listens on addr and serves until Close. healthy reports whether
// sluice is serving (200) or not (503). dashboard, when not nil, serves
// the live page at / and its data at /dashboard.json.
func Start(addr string, reg *prometheus.Registry, healthy func() bool, dashboard http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if dashboard != nil {
		mux.Handle("GET /{$}", dashboard)
		mux.Handle("GET /dashboard.json", dashboard)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("shutting down\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	s := &Server{
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server failed", "error", err)
		}
	}()
	log.Info("admin endpoint listening", "address", ln.Addr().String())
	return s, nil
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
