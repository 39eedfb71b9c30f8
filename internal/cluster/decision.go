package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// maxDecisionSize bounds a failover decision read from etcd (anyone who
// can write under the prefix can put anything there).
const maxDecisionSize = 4 << 10

// Decision is the fleet's failover decision for one database, stored as
// JSON under <prefix>primary/<database>: which server takes writes, its
// timeline, and the fencing epoch, which grows by one with every
// decision. Done is false for an intent: the leader chose Primary and
// may not have promoted it yet; whoever leads next finishes it.
type Decision struct {
	Epoch    uint64    `json:"epoch"`
	Primary  string    `json:"primary"` // the server as configured (host:port)
	Timeline uint32    `json:"timeline,omitempty"`
	Done     bool      `json:"done"`
	Leader   string    `json:"leader"` // the instance id that wrote it
	At       time.Time `json:"at"`
}

func (d Decision) encode() string {
	b, _ := json.Marshal(d) // a Decision always marshals
	return string(b)
}

// decodeDecision parses a stored decision: it returns a valid one or an
// error, never panics, and reads at most maxDecisionSize bytes.
func decodeDecision(data []byte) (Decision, error) {
	var d Decision
	if len(data) > maxDecisionSize {
		return d, fmt.Errorf("failover decision of %d bytes (more than %d)", len(data), maxDecisionSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		return Decision{}, fmt.Errorf("failover decision is not valid JSON: %w", err)
	}
	if dec.More() {
		return Decision{}, errors.New("failover decision has data after its JSON object")
	}
	switch {
	case d.Epoch == 0:
		return Decision{}, errors.New("failover decision has epoch 0")
	case d.Primary == "" || !utf8.ValidString(d.Primary):
		return Decision{}, fmt.Errorf("failover decision names no valid server (%q)", clip(d.Primary))
	case !utf8.ValidString(d.Leader):
		return Decision{}, errors.New("failover decision's leader is not UTF-8")
	}
	return d, nil
}

// nextAllowed reports whether next may follow cur (have: cur exists): a
// new decision has the next epoch (epoch 1 when none exists), and an
// intent is recorded done under its own epoch, for the same server.
func nextAllowed(cur Decision, have bool, next Decision) error {
	switch {
	case next.Primary == "":
		return errors.New("a decision must name a server")
	case !have && next.Epoch == 1:
		return nil
	case !have:
		return fmt.Errorf("the first decision has epoch 1, not %d", next.Epoch)
	case next.Epoch == cur.Epoch+1:
		return nil
	case next.Epoch == cur.Epoch && next.Done && !cur.Done && next.Primary == cur.Primary:
		return nil
	}
	return fmt.Errorf("decision of epoch %d (%s, done %v) cannot follow epoch %d (%s, done %v)",
		next.Epoch, next.Primary, next.Done, cur.Epoch, cur.Primary, cur.Done)
}
