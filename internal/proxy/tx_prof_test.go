package proxy_test

import (
	"os"
	"testing"
)

func TestTxProfileLoad(t *testing.T) {
	if os.Getenv("SLUICE_PROFILE") == "" {
		t.Skip("set SLUICE_PROFILE=1")
	}
	h := startWith(t, txPool(20), "log:\n  level: info\n")
	pgbench(t, h, "-S", "-c", "50", "-j", "2", "-T", "10")
}
