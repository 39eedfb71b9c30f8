package proxy

import "github.com/sluice-proxy/sluice/internal/txpool/txcore"

// answerParseLocally answers, without a server connection, a chunk that
// is exactly Parse (named) + Sync from a client outside a transaction,
// when the statement's server form is one PostgreSQL has already
// accepted for this pool (the decision and why: txcore.Client.LocalParse).
// It reports whether it answered; false leaves the chunk to the usual
// path.
func (c *txClient) answerParseLocally(chunk []byte) bool {
	if !c.up.AtBoundary() || c.entry == nil {
		return false
	}
	l, ok := c.LocalParse(chunk, &c.entry.parsed)
	if !ok || !c.idleUnattached() {
		return false
	}
	c.AddLocal(l)
	if _, err := c.ss.client.Write(txcore.ParseCompleteReady); err != nil {
		return false // the next read fails and ends the session
	}
	c.bytesDown.Add(float64(len(txcore.ParseCompleteReady)))
	return true
}

// idleUnattached reports whether the client holds no server connection
// and its last attachment ended cleanly, so nothing else writes to it.
func (c *txClient) idleUnattached() bool {
	a, err := c.liveAttachment()
	return a == nil && err == nil
}
