// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) in pure
// Go: datagrams like "READY=1" to the socket named by $NOTIFY_SOCKET, and
// the watchdog's keep-alive pings. Without $NOTIFY_SOCKET (not under
// systemd, or a unit that is not Type=notify) every call does nothing.
//
// A Notifier has no goroutine; RunWatchdog is run by its caller on one of
// its own and returns when its context ends.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to systemd. The zero value and nil do nothing.
type Notifier struct {
	addr string // "" when not under systemd

	mu   sync.Mutex
	conn *net.UnixConn // opened on first use, kept
}

// FromEnv is the Notifier $NOTIFY_SOCKET names (one starting with "@" is
// an abstract socket). The variable is left set, so that a process sluice
// starts for an upgrade notifies too (the unit needs NotifyAccess=all).
func FromEnv() *Notifier {
	return &Notifier{addr: os.Getenv("NOTIFY_SOCKET")}
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Send sends one notification: newline-separated assignments.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		name := n.addr
		if strings.HasPrefix(name, "@") {
			name = "\x00" + name[1:]
		}
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("sd_notify: %w", err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Close releases the socket.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}

// Ready says the service is up (start-up done, or a reload finished).
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading says a reload began; newer systemd (253+) wants the
// monotonic clock with it, to tell this reload from an earlier one.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says the service is shutting down. Not sent by a process that
// hands over to another: systemd would stop the unit.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// MainPID tells systemd another process is now the service's main one
// (after an upgrade), so the old one's exit does not end the unit.
func (n *Notifier) MainPID(pid int) error { return n.Send("MAINPID=" + strconv.Itoa(pid)) }

// Watchdog is the keep-alive ping.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// Status is a free-form line systemctl status shows.
func (n *Notifier) Status(s string) error { return n.Send("STATUS=" + s) }

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}

// WatchdogInterval is the interval systemd expects pings in
// ($WATCHDOG_USEC), or 0 when the watchdog is off or meant for another
// process ($WATCHDOG_PID not ours). A process started for an upgrade is
// started without $WATCHDOG_PID and takes the interval over.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// RunWatchdog calls ping every interval/2 until ctx ends (systemd's
// advice: ping at half the interval). interval <= 0 returns at once.
func RunWatchdog(ctx context.Context, interval time.Duration, ping func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	ping()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ping()
		}
	}
}
