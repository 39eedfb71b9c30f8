package txpool

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/notify"
	"github.com/sluice-proxy/sluice/internal/txpool/txcore"
)

// LISTEN without a pin (docs/transaction-pooling.md, "LISTEN and
// NOTIFY"). A client's LISTEN and UNLISTEN run on the connection its
// transaction holds, so that syntax errors and transactions are
// PostgreSQL's (a LISTEN takes effect at commit; a rolled-back one does
// nothing). When the transaction ends (detach, detach.go), the channels
// that connection now listens to move to the pool's listener
// (internal/notify): moveListens reads them and UNLISTENs them in one
// round trip, and the connection goes back to the pool listening to
// nothing. Until the listener listens too, the client's ReadyForQuery
// is held back (pumpDown holds it, detach sends it), so a client whose
// LISTEN returned misses no notification committed after it.
//
// Notifications reach the client through its Subscriber's queue and are
// written by whoever writes to the client at that moment and only
// between messages: the client's goroutine when it holds no server
// connection (deliverNotifications, from Serve), woken by notifyWake (a
// past read deadline on the client socket, or Resume for a parked
// client); the attachment's goroutine for a pinned client idle on its
// connection. A client in a transaction gets them after it ends.

// listenWait bounds how long a transaction's end waits for the
// listener to confirm its LISTEN when the pool has no borrow_timeout.
const listenWait = 10 * time.Second

// fanOut is the pool's LISTEN fan-out, or nil when it is off (LISTEN
// pins the client then, as before).
func (c *Client) fanOut() *notify.Hub {
	if c.maxPending <= 0 {
		return nil
	}
	return c.sess.Notifier()
}

// moveListens moves the channels the attachment's connection listens
// to, and the UNLISTENs the transaction ran, to the pool's listener
// (detach's, on the reader's goroutine, with the connection idle), and
// returns pins without PinListen.
func (c *Client) moveListens(a *attachment, hub *notify.Hub, pins []string, ul txcore.Unlistens) ([]string, error) {
	var listen []string
	if i := slices.Index(pins, backend.PinListen); i >= 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		chans, err := a.Conn.TakeListens(ctx)
		cancel()
		if err != nil {
			return pins, err
		}
		listen = chans
		pins = slices.Delete(slices.Clone(pins), i, i+1)
		if len(pins) == 0 {
			pins = nil
		}
	}
	sub := c.listen.Load()
	if sub == nil {
		if len(listen) == 0 {
			return pins, nil // unlistened what it never listened to
		}
		sub = hub.NewSubscriber(c.maxPending, c.notifyWake)
		c.listen.Store(sub)
	}
	seq := hub.Change(sub, notify.Change{UnlistenAll: ul.All, Unlisten: ul.Channels, Listen: listen})
	wait := c.DB.Pool.BorrowTimeout.D()
	if wait <= 0 {
		wait = listenWait
	}
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	if err := hub.Wait(ctx, seq); err != nil {
		c.env.Log.Warn("LISTEN fan-out: the pool's listener connection did not confirm in time; the client may miss notifications until it does",
			"remote", c.sess.Remote(), "database", c.DB.Name, "error", err)
	}
	cancel()
	return pins, nil
}

// notifyWake is the Subscriber's wake: notifications are queued for the
// client. Called on the listener's goroutine; the flag is set before
// the deadline, so a client goroutine that arms its deadline after this
// one sees the flag (Serve checks it after arming).
func (c *Client) notifyWake() {
	c.flags.Or(flagNotify)
	c.conn.SetReadDeadline(time.Unix(1, 0))
	c.Wake() // a parked client is resumed
}

// notifyTimeout reports whether a client read deadline that passed was
// notifyWake's rather than the client's own: its flag is set, or the
// client listens and its own deadline (idleAt) has not come. notifyWake
// sets the flag before the deadline, so the client goroutine may take
// the flag (at the top of Serve's loop) before the past deadline lands;
// that late deadline must not pass for client_idle_timeout.
func (c *Client) notifyTimeout() bool {
	if c.has(flagNotify) {
		return true
	}
	if c.listen.Load() == nil {
		return false
	}
	at := c.idleAt.Load()
	return at == 0 || time.Now().UnixNano() < at
}

func (c *Client) lateWake() { c.conn.SetReadDeadline(time.Unix(1, 0)) }

// pendingNotifications reports whether the client has notifications to
// take (the client goroutine's; one atomic load for a client that never
// listened).
func (c *Client) pendingNotifications() (*notify.Subscriber, bool) {
	sub := c.listen.Load()
	if sub == nil {
		return nil, false
	}
	return sub, c.take(flagNotify) || sub.Pending()
}

// deliverNotifications writes the client's queued notifications if
// nobody else writes to it now (client goroutine): the client holds no
// server connection. A client attached and idle (pinned for another
// reason) has its attachment's goroutine write them; a client in a
// transaction gets them when it ends (detach wakes it again).
func (c *Client) deliverNotifications(sub *notify.Subscriber) {
	a := c.att
	if a != nil {
		a.mu.Lock()
		if !a.detached {
			if !a.busyLocked() && a.Status == 'I' && !a.inflight {
				a.notify = true
				a.wakeLocked()
			}
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		if _, err := c.liveAttachment(); err != nil {
			return // ended fatally: the next read ends the session
		}
	}
	writeNotifications(c, sub)
}

// writeNotifications writes what sub has queued to the client, after a
// notice saying how many were dropped, if any. The caller is the one
// writer to the client now. A client that does not read blocks its own
// goroutine here, while its queue stays bounded.
func writeNotifications(c *Client, sub *notify.Subscriber) {
	frames, dropped := sub.Take()
	if len(frames) == 0 && dropped == 0 {
		return
	}
	bp := outBuffers.Get().(*[]byte)
	out := (*bp)[:0]
	if dropped > 0 {
		n := &pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000",
			Message: fmt.Sprintf("sluice dropped %d notifications for this client: more than limits.max_pending_notifications (%d) were waiting to be delivered", dropped, c.maxPending)}
		out, _ = n.Encode(out)
	}
	for _, f := range frames {
		out = append(out, f...)
	}
	if _, err := c.conn.Write(out); err == nil {
		c.env.Metrics.BytesSrvToClient.Add(float64(len(out)))
	}
	if cap(out) <= 1<<20 {
		*bp = out[:0]
		outBuffers.Put(bp)
	}
}

// holdReadyLocked decides, for a chunk out that ends with a
// ReadyForQuery 'I', whether to hold that ReadyForQuery back until the
// transaction's LISTENs are moved to the listener (a.mu held). It
// returns what to write now.
func (a *attachment) holdReadyLocked(out []byte) []byte {
	const zLen = 6
	if len(out) < zLen || out[len(out)-1] != 'I' || !a.Listens() || a.client.maxPending <= 0 {
		return out
	}
	copy(a.heldZ[:], out[len(out)-zLen:])
	a.zHeld = true
	return out[:len(out)-zLen]
}

// releaseReady writes a held ReadyForQuery (reader's goroutine).
func (a *attachment) releaseReady() {
	if a.zHeld {
		a.zHeld = false
		if _, err := a.client.conn.Write(a.heldZ[:]); err == nil {
			a.client.env.Metrics.BytesSrvToClient.Add(float64(len(a.heldZ)))
		}
	}
}

// flushNotifyLocked reports and clears a request from the client's
// goroutine that run write queued notifications (a.mu held).
func (a *attachment) takeNotifyLocked() bool {
	n := a.notify
	a.notify = false
	return n && !a.busyLocked() && a.Status == 'I'
}

// leaveListens forgets the client's channels (End).
func (c *Client) leaveListens() {
	if sub := c.listen.Load(); sub != nil {
		sub.Leave()
	}
}
