package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var exampleConfig = filepath.Join("..", "..", "deploy", "sluice.yaml")

// deploy/sluice.yaml, the example the docs and the container image use,
// is a valid configuration once its one ${VAR} is set, and says which
// variable it needs when it is not.
func TestExampleConfigIsAccepted(t *testing.T) {
	t.Setenv("APP_PASSWORD", "example-password")
	out, err := runCLI(t, "check-config", "--config", exampleConfig)
	require.NoError(t, err, out)
	require.Contains(t, out, "sluice.yaml: ok")
}

func TestExampleConfigNamesItsVariable(t *testing.T) {
	out, err := runCLI(t, "check-config", "--config", exampleConfig)
	require.Error(t, err)
	require.Contains(t, out, "users[0].password: environment variable APP_PASSWORD is not set")
}
