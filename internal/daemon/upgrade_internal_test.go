package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/handoff"
)

// The new process is told its hand-off descriptor and not the old one's
// watchdog pid (it takes the watchdog over: systemd learns its pid from
// MAINPID); a stale descriptor variable is replaced.
func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "WATCHDOG_PID=42", "WATCHDOG_USEC=30000000", "SLUICE_HANDOFF_FD=9", "NOTIFY_SOCKET=/run/n"})
	require.Equal(t, []string{"PATH=/bin", "WATCHDOG_USEC=30000000", "NOTIFY_SOCKET=/run/n", "SLUICE_HANDOFF_FD=3"}, got)
}

// fakeMover adopts clients whose state is "ok" and refuses the others,
// as proxy.Server.AdoptClient would (the seam with the client side).
type fakeMover struct {
	mu      sync.Mutex
	adopted []string
}

func (m *fakeMover) HandOffClients(context.Context, func([]byte, []*os.File) error) error {
	return nil
}

func (m *fakeMover) AdoptClient(state []byte, files []*os.File) error {
	closeFiles(files) // owned here, whatever the answer
	if !strings.HasPrefix(string(state), "ok") {
		return errors.New("no slot for " + string(state))
	}
	m.mu.Lock()
	m.adopted = append(m.adopted, string(state))
	m.mu.Unlock()
	return nil
}

// Each client is answered: send returns nil only for the adopted ones,
// the refusal's reason otherwise, also with several senders at once; a
// new process that is gone makes send fail (the old one keeps the client).
func TestClientsAreAnsweredOneByOne(t *testing.T) {
	old, file, err := handoff.Pair()
	require.NoError(t, err)
	defer old.Close()
	successor, err := handoff.FileConn(file)
	require.NoError(t, err)
	mover := &fakeMover{}
	type result struct {
		adopted, refused int
		err              error
	}
	done := make(chan result, 1)
	go func() {
		a, r, err := adoptClients(successor, mover)
		successor.Close()
		done <- result{a, r, err}
	}()
	reader := startHandOffReader(old, func(uint32, [4]byte) {}, slog.New(slog.DiscardHandler))
	defer reader.wait()
	send := clientSender(context.Background(), old, reader)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.NoError(t, send([]byte("ok-1"), []*os.File{r, w}))
	require.ErrorContains(t, send([]byte("busy"), []*os.File{r}), "did not adopt the client: no slot for busy")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			state := fmt.Sprintf("ok-%d", i+2)
			if i%2 == 1 {
				state = fmt.Sprintf("no-%d", i+2)
			}
			errs[i] = send([]byte(state), []*os.File{r})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 {
			require.ErrorContains(t, err, fmt.Sprintf("no slot for no-%d", i+2))
		} else {
			require.NoError(t, err)
		}
	}
	require.NoError(t, old.Send(handoff.KindDone, nil))
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, 5, res.adopted)
	require.Equal(t, 5, res.refused)
	require.Len(t, mover.adopted, 5)
	require.Error(t, send([]byte("ok-late"), nil), "the new process is gone: the client stays")
}
