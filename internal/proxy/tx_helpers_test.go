package proxy_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// metricValue reads a counter's or gauge's current value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// eventuallyMetric waits for a metric to reach want: sluice updates pin
// metrics right after the ReadyForQuery the client waits for. The minute
// is a guard against a hang on a loaded machine, not a measured limit.
func eventuallyMetric(t *testing.T, m prometheus.Metric, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for metricValue(t, m) != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, want, metricValue(t, m))
}
