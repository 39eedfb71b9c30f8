package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/handoff"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/version"
)

// DefaultUpgradeTimeout bounds how long the old process waits for the new
// one to say it serves.
const DefaultUpgradeTimeout = time.Minute

// roleAdmin is the admin endpoint's listener in the hand-off.
const roleAdmin = "admin.address"

// ClientMover is the client side of an upgrade, which *proxy.Server
// implements: the old process hands over its clients (HandOffClients,
// after the new process took the listeners and serves), the new one
// adopts each (AdoptClient). HandOffClients keeps owning the files it
// passes to send (it closes them once send returned nil: the client lives
// in the new process; after an error the client is still its own);
// AdoptClient owns those it is given, and its error goes back to send.
type ClientMover interface {
	HandOffClients(ctx context.Context, send func(state []byte, files []*os.File) error) error
	AdoptClient(state []byte, files []*os.File) error
}

var _ ClientMover = (*proxy.Server)(nil)

// Upgrade settings (RunOptions).
type upgradeSettings struct {
	binary  string        // the executable to start; "" disables upgrades
	args    []string      // its arguments (this process's)
	timeout time.Duration // for the new process to say ready
}

// upgrade starts the new binary and hands it the listeners. It returns
// the hand-off socket once the new process serves (the caller then stops
// accepting and hands over the clients); on any failure the new process
// is gone, this one serves on, and the error says why.
func (d *Daemon) upgrade() (*handoff.Conn, handoff.Hello, error) {
	u := d.upgradeCfg
	conn, peerEnd, err := handoff.Pair()
	if err != nil {
		return nil, handoff.Hello{}, err
	}
	cmd := exec.Command(u.binary, u.args...)
	cmd.Env = childEnv(os.Environ())
	cmd.ExtraFiles = []*os.File{peerEnd} // fd 3
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	err = cmd.Start()
	peerEnd.Close()
	if err != nil {
		conn.Close()
		return nil, handoff.Hello{}, fmt.Errorf("starting %s: %w", u.binary, err)
	}
	d.Log.Info("upgrade: started the new process", "binary", u.binary, "pid", cmd.Process.Pid)
	fail := func(err error) (*handoff.Conn, handoff.Hello, error) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the new process did not say ready within %s", u.timeout)
		}
		conn.Close()
		cmd.Process.Kill() // a process that never said ready serves nobody
		werr := cmd.Wait()
		return nil, handoff.Hello{}, fmt.Errorf("%w (new process %d: %v)", err, cmd.Process.Pid, werr)
	}
	// The new process closing its end (exiting) ends any wait below.
	conn.SetDeadline(time.Now().Add(u.timeout))
	// The fleet seat (peer number, incarnation) lets the new process keep
	// this instance's place in the fleet: it moves the record and the
	// peer number to its own lease while this one drains.
	peer, err := conn.Handshake(handoff.Hello{ClientFormat: advertisedClientFormat(), PID: os.Getpid(), Version: version.Version,
		Fleet: d.fleetSeat()})
	if err != nil {
		return fail(fmt.Errorf("hello: %w", err))
	}
	sendErr := d.sendListeners(conn)
	// A new process that refuses (its config is bad) says why and closes
	// without reading: its reason may wait behind a failed send.
	kind, payload, files, err := conn.Recv()
	if sendErr != nil && (err != nil || kind != handoff.KindAbort) {
		closeFiles(files)
		return fail(sendErr)
	}
	closeFiles(files)
	switch {
	case err != nil:
		return fail(fmt.Errorf("the new process ended the hand-off: %w", err))
	case kind == handoff.KindAbort:
		return fail(fmt.Errorf("the new process refused: %s", payload))
	case kind != handoff.KindReady:
		return fail(fmt.Errorf("the new process sent %s instead of ready", kind))
	}
	conn.SetDeadline(time.Time{})
	cmd.Process.Release() // it outlives this process
	return conn, peer, nil
}

// sendListeners sends the proxy's and the admin endpoint's listening
// sockets, then Done. The duplicates made for it are closed here.
func (d *Daemon) sendListeners(conn *handoff.Conn) error {
	files, err := d.Proxy.ListenerFiles()
	if err != nil {
		return err
	}
	if d.Admin != nil {
		f, err := d.Admin.ListenerFile()
		if err != nil {
			closeListenerFiles(files)
			return err
		}
		files = append(files, proxy.ListenerFile{Role: roleAdmin, Address: d.adminAddress, File: f})
	}
	defer closeListenerFiles(files)
	for _, lf := range files {
		if err := conn.Send(handoff.KindListener, handoff.EncodeListener(lf.Role, lf.Address), lf.File); err != nil {
			return err
		}
	}
	// This process reads the new one's Cancel messages from Ready on
	// (handOffReader); an older new process ignores the flag.
	return conn.Send(handoff.KindDone, handoff.EncodeDone(handoff.DoneTakesCancels))
}

func closeListenerFiles(files []proxy.ListenerFile) {
	for _, lf := range files {
		if lf.File != nil {
			lf.File.Close()
		}
	}
}

// childEnv is this process's environment for the new one: the hand-off
// descriptor named, and $WATCHDOG_PID left out, so that the new process
// (whose pid systemd does not know yet) takes the watchdog over.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "WATCHDOG_PID=") || strings.HasPrefix(kv, handoff.EnvFD+"=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, handoff.EnvFD+"=3")
}

// handOver is the old process's end of a successful upgrade: it stops
// accepting (the new process serves the same sockets), hands over the
// clients when both binaries share a client format (else they drain),
// then serves the clients left until they leave, and shuts down within
// shutdown_timeout in all, without telling systemd it stops (the unit
// goes on, under the new main pid).
func (d *Daemon) handOver(conn *handoff.Conn, peer handoff.Hello) {
	d.handedOver.Store(true)
	d.notify.MainPID(peer.PID)
	d.Proxy.StopAccepting()
	if d.Admin != nil {
		d.Admin.StopAccepting()
	}
	wait := time.Duration(d.shutdown.Load())
	deadline := time.Now().Add(wait)
	// The socket stays open until this process exits: the new process,
	// which has the listeners, passes on the cancels it gets for the
	// keys of the clients still here (cancel_forward.go). A new process
	// that predates this closes its end after Done.
	reader := startHandOffReader(conn, d.Proxy.CancelForwarded, d.Log)
	format := advertisedClientFormat()
	if peer.ClientFormat != 0 && peer.ClientFormat == format {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var mover ClientMover = d.Proxy
		err := mover.HandOffClients(ctx, clientSender(ctx, conn, reader))
		cancel()
		if err != nil {
			d.Log.Warn("upgrade: handing over clients ended early; the rest finish here", "error", err)
		}
	} else if peer.ClientFormat != format {
		d.Log.Info("upgrade: the new process keeps clients in another format; clients finish here (served until they leave or shutdown_timeout)",
			"format_here", format, "format_there", peer.ClientFormat)
	} else {
		d.Log.Info("upgrade: this binary moves no clients; they finish here (served until they leave or shutdown_timeout)")
	}
	conn.SetWriteDeadline(time.Time{})
	conn.SendWithin(cancelSendTimeout, handoff.KindDone, nil)
	d.Log.Info("upgrade: handed over to the new process", "pid", peer.PID, "version", peer.Version)
	// The clients left here finish on their own: a drain, never a drop
	// (a shutdown would end transaction-pooled ones at their next idle
	// point). Past shutdown_timeout the shutdown ends the rest, as at
	// SIGTERM.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	d.Proxy.WaitClientsGone(ctx)
	cancel()
	d.shutdownWithin(max(time.Until(deadline), 0))
	conn.Close() // the new process stops passing cancels on
	reader.wait()
}

// pendingHandOver is a successful upgrade asked for by the console or
// the API, for Wait to finish (handOver).
type pendingHandOver struct {
	conn *handoff.Conn
	peer handoff.Hello
}

// tryUpgrade runs an upgrade unless one runs already, and logs why one
// did not happen. After a success the lock stays taken: this process
// hands over, and no other upgrade may start from it.
func (d *Daemon) tryUpgrade() (*handoff.Conn, handoff.Hello, error) {
	refuse := func(why string) (*handoff.Conn, handoff.Hello, error) {
		d.Log.Warn("upgrade not started", "reason", why)
		return nil, handoff.Hello{}, errors.New(why)
	}
	if d.upgradeCfg.binary == "" {
		return refuse("this sluice was not started by 'sluice run': it cannot upgrade itself")
	}
	if !d.upgradeMu.TryLock() {
		return refuse("an upgrade is already running")
	}
	if d.stopping.Load() {
		d.upgradeMu.Unlock()
		return refuse("sluice is shutting down")
	}
	conn, peer, err := d.upgrade()
	if err != nil {
		d.upgradeMu.Unlock()
		d.Log.Error("upgrade failed; this process keeps serving", "error", err)
		d.writePidfile() // the new process may have named itself
		return nil, handoff.Hello{}, err
	}
	return conn, peer, nil
}

// requestUpgrade is the console's UPGRADE and POST /api/upgrade: it
// returns once the new process serves (Wait then hands over) or failed.
func (d *Daemon) requestUpgrade() error {
	conn, peer, err := d.tryUpgrade()
	if err != nil {
		return err
	}
	d.handOverReq <- pendingHandOver{conn, peer} // room for the one success
	return nil
}

// handoffFDFromEnv reads the hand-off descriptor's number from the environment
// and removes the variable (a later upgrade of this process names its own).
func handoffFDFromEnv() (int, bool, error) {
	v, ok := os.LookupEnv(handoff.EnvFD)
	if !ok {
		return 0, false, nil
	}
	os.Unsetenv(handoff.EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, true, fmt.Errorf("%s=%q is not an inherited descriptor", handoff.EnvFD, v)
	}
	syscall.CloseOnExec(fd)
	return fd, true, nil
}
