// Package hatest runs sluice in front of a primary and streaming standbys
// (each test its own replica set) and fails the primary over.
package hatest

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
