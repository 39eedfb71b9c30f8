package proxy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// txPool is the pool YAML for a transaction-pooled appdb of size n.
func txPool(n string) string { return "max_size: " + n + "\n    pool_mode: transaction" }

func TestTxSmoke(t *testing.T) {
	h := start(t, txPool("1"))
	ctx := context.Background()
	a, b := h.connect(ctx), h.connect(ctx)
	require.Equal(t, []string{"1"}, query(t, a, "SELECT 1"))
	require.Equal(t, []string{"2"}, query(t, b, "SELECT 2"))
	require.Equal(t, []string{"3"}, query(t, a, "SELECT 3"))
}

func TestTxPgbenchModes(t *testing.T) {
	h := start(t, txPool("3"))
	for _, mode := range []string{"simple", "extended", "prepared"} {
		pgbench(t, h, "-S", "-M", mode, "-c", "20", "-j", "2", "-T", "3")
	}
}
