package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecisionRoundTrip(t *testing.T) {
	d := Decision{Epoch: 3, Primary: "127.0.0.1:5433", Timeline: 2, Done: true, Leader: "s1", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got, err := decodeDecision([]byte(d.encode()))
	require.NoError(t, err)
	require.Equal(t, d, got)
	for _, bad := range []string{``, `{}`, `{"epoch":0,"primary":"a:1"}`, `{"epoch":1}`, `{"epoch":1,"primary":"a:1"} x`, `[1]`} {
		_, err := decodeDecision([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestNextAllowed(t *testing.T) {
	cur := Decision{Epoch: 2, Primary: "a:1", Done: true}
	require.NoError(t, nextAllowed(Decision{}, false, Decision{Epoch: 1, Primary: "a:1", Done: true}))
	require.Error(t, nextAllowed(Decision{}, false, Decision{Epoch: 2, Primary: "a:1"}))
	require.NoError(t, nextAllowed(cur, true, Decision{Epoch: 3, Primary: "b:1"}))
	require.Error(t, nextAllowed(cur, true, Decision{Epoch: 2, Primary: "b:1", Done: true}), "a done decision is not redone")
	require.Error(t, nextAllowed(cur, true, Decision{Epoch: 4, Primary: "b:1"}), "an epoch is never skipped")
	intent := Decision{Epoch: 3, Primary: "b:1"}
	require.NoError(t, nextAllowed(intent, true, Decision{Epoch: 3, Primary: "b:1", Done: true}))
	require.Error(t, nextAllowed(intent, true, Decision{Epoch: 3, Primary: "c:1", Done: true}), "an intent is finished on its own server")
}

// FuzzDecodeDecision: whatever is stored under a decision key, decoding
// returns a valid decision or an error, and a valid one round-trips.
func FuzzDecodeDecision(f *testing.F) {
	f.Add([]byte(Decision{Epoch: 1, Primary: "127.0.0.1:5432", Done: true, Leader: "s1"}.encode()))
	f.Add([]byte(`{"epoch":2,"primary":"h:1","done":false}`))
	f.Add([]byte(`{"epoch":18446744073709551615,"primary":"\u0000"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDecision(data)
		if err != nil {
			return
		}
		if d.Epoch == 0 || d.Primary == "" {
			t.Fatalf("invalid decision accepted: %+v", d)
		}
		again, err := decodeDecision([]byte(d.encode()))
		if err != nil || again.Epoch != d.Epoch || again.Primary != d.Primary || again.Done != d.Done {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
