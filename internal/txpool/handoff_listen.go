package txpool

import (
	"context"
	"errors"

	"github.com/sluice-proxy/sluice/internal/notify"
)

// What of LISTEN moves in an upgrade (docs/design/upgrade-handoff.md):
// the channels a client listens to through its pool's fan-out go with it
// in its state; the new process registers them with its own fan-out and
// waits until its listener connection listens before it says the client
// is adopted. The old process keeps the client's subscription until then
// and drops it (End) after: a notification committed after the new
// listener confirmed reaches the client from the new process, once; one
// committed while the client was being moved, and queued on the old
// process, is lost, as one is while a listener reconnects.

// Listening is the channels the client listens to through the fan-out
// (nil: none). The caller owns the client (an offered one).
func (c *Client) Listening() []string {
	if sub := c.listen.Load(); sub != nil {
		if ch := sub.Channels(); len(ch) > 0 {
			return ch
		}
	}
	return nil
}

// errNoFanOut: the new process keeps LISTEN pinning (its
// limits.max_pending_notifications is 0), so a listening client cannot
// be adopted without a server connection of its own.
var errNoFanOut = errors.New("this process has no LISTEN fan-out (limits.max_pending_notifications is 0)")

// RestoreListens registers channels with the pool's fan-out for a client
// made by Init, before Ready, and waits (bounded by ctx) until the
// pool's listener connection listens to them.
func (c *Client) RestoreListens(ctx context.Context, channels []string) error {
	if len(channels) == 0 {
		return nil
	}
	hub := c.fanOut()
	if hub == nil {
		return errNoFanOut
	}
	sub := hub.NewSubscriber(c.maxPending, c.notifyWake)
	c.listen.Store(sub)
	seq := hub.Change(sub, notify.Change{Listen: channels})
	if err := hub.Wait(ctx, seq); err != nil {
		sub.Leave()
		c.listen.Store(nil)
		return err
	}
	return nil
}
