// Package dashboard serves sluice's live page on the admin listener: one
// self-contained HTML page (no CDN, no build step) at "/", and the data
// it polls at "/dashboard.json", computed from sluice's own Prometheus
// registry so that the page shows exactly what /metrics says.
//
// Rates and percentiles need history: the dashboard keeps the snapshots
// it took in the last minute, and takes them lazily, at most one per
// MinInterval, when someone asks for the JSON. It owns no goroutine, and
// costs nothing while nobody looks. Its memory is bounded by
// Window/MinInterval snapshots of the watched series (see names.go).
package dashboard

import (
	"embed"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Window is the span of the page's rates and percentiles.
const Window = time.Minute

// MinInterval is the least time between two snapshots: more viewers do
// not make more gathers.
const MinInterval = time.Second

// keepBeyond is how much older than Window the base snapshot may be: a
// snapshot taken before a pause in polling longer than this is dropped,
// rather than making "the last minute" an hour.
const keepBeyond = 5 * time.Second

//go:embed page/index.html
var page embed.FS

// Dashboard is the page's handler. Its methods may be called from any
// goroutine.
type Dashboard struct {
	gather func() ([]*dto.MetricFamily, error)
	now    func() time.Time

	mu    sync.Mutex
	snaps []Snapshot // oldest first
	// lastFailover: per database, when a snapshot first showed its
	// failover count higher than the one before (bounded by the
	// number of databases).
	lastFailover map[string]time.Time
	// view was built from snaps as they are; nil once a snapshot is
	// added. Viewers polling between snapshots share it.
	view *View
}

// New returns a dashboard reading gather, the registry's Gather.
func New(gather func() ([]*dto.MetricFamily, error)) *Dashboard {
	return &Dashboard{gather: gather, now: time.Now, lastFailover: map[string]time.Time{}}
}

// ServeHTTP serves "/" (the page) and "/dashboard.json" (the data).
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		b, err := page.ReadFile("page/index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// Everything is inline; the page may only fetch its own data.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	case "/dashboard.json":
		v, err := d.View()
		if err != nil {
			http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			http.Error(w, "encoding the view: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// View takes a snapshot unless the last one is younger than MinInterval
// and builds the view over the snapshots of the last Window (once per
// snapshot: viewers in between get the same one). The View's slices and
// pointers are shared: callers must not modify them.
func (d *Dashboard) View() (View, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if n := len(d.snaps); n == 0 || now.Sub(d.snaps[n-1].At) >= MinInterval {
		families, err := d.gather()
		if err != nil && len(families) == 0 {
			return View{}, err
		}
		// A partial gather (one collector failed) still shows the rest.
		d.add(NewSnapshot(now, families))
		d.view = nil
	}
	if d.view == nil {
		v := Build(d.snaps, Window, d.lastFailover)
		d.view = &v
	}
	return *d.view, nil
}

// add appends s, notes failovers it shows, and drops the snapshots no
// longer needed as a base.
func (d *Dashboard) add(s Snapshot) {
	// A failover is dated by the snapshot that first shows it, so only
	// when the one before is recent: after a pause in polling its time
	// is unknown.
	if n := len(d.snaps); n > 0 && s.At.Sub(d.snaps[n-1].At) <= keepBeyond+MinInterval {
		prev := d.snaps[n-1]
		for _, f := range s.Series[failovers] {
			db := f.Labels["database"]
			if p := find(prev, failovers, f.Labels); p != nil && f.Value > p.Value {
				d.lastFailover[db] = s.At
			}
		}
	}
	d.snaps = append(d.snaps, s)
	drop := 0
	for drop < len(d.snaps)-1 && s.At.Sub(d.snaps[drop].At) > Window+keepBeyond {
		drop++
	}
	// Keep only one snapshot older than Window: the base.
	for drop+1 < len(d.snaps)-1 && s.At.Sub(d.snaps[drop+1].At) >= Window {
		drop++
	}
	d.snaps = append(d.snaps[:0], d.snaps[drop:]...)
}
