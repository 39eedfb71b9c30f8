package demo_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/demo"
	"github.com/sluice-proxy/sluice/internal/testutil/syncbuf"
)

// The failover demo kills the primary under a write load, sluice promotes
// the standby, the counter continues, and the summary finds every
// acknowledged write on the new primary. Short timings keep it quick.
func TestDemoFailoverLosesNoAcknowledgedWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, logs := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	err := demo.Run(ctx, demo.Options{Port: freePort(t), AdminPort: freePort(t), Out: out, LogOut: logs,
		Failover: &demo.FailoverOptions{
			WriteEvery:   20 * time.Millisecond,
			KillAfter:    1500 * time.Millisecond,
			ContinueFor:  1500 * time.Millisecond,
			ReportEvery:  250 * time.Millisecond,
			PromoteAfter: time.Second,
			HealthCheck:  200 * time.Millisecond,
		}})
	t.Logf("demo output:\n%s", out)
	if err != nil || t.Failed() {
		t.Logf("sluice log:\n%s", logs)
	}
	require.NoError(t, err)
	s := out.String()
	require.Regexp(t, `psql "postgresql://[^"]+"`, s)
	require.Contains(t, s, "=== kill -9 the primary's postmaster")
	m := regexp.MustCompile(`writes resumed on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(s)
	require.NotNil(t, m, "writes never resumed")
	require.Regexp(t, `new primary +127\.0\.0\.1:`+m[1]+`, now a primary, promoted by sluice`, s)
	require.Regexp(t, `on the new primary +(\d+) of (\d+) acknowledged writes present, 0 twice`, s)
	p := regexp.MustCompile(`on the new primary +(\d+) of (\d+)`).FindStringSubmatch(s)
	require.Equal(t, p[1], p[2])
	require.Contains(t, s, "No acknowledged write was lost")
	require.Contains(t, s, "writes acknowledged:")
	require.Contains(t, s, "primary stopped and removed")
	require.Contains(t, s, "standby stopped and removed")
}
