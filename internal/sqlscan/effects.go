package sqlscan

import (
	"strconv"
	"strings"
)

// Effects is a set of flags: what a query text may do to session state.
type Effects uint16

const (
	// SetsSession: the text may change session settings (SET other than
	// LOCAL/TRANSACTION/CONSTRAINTS, RESET, set_config(), DISCARD ALL), which
	// the pooler must track and re-apply.
	SetsSession Effects = 1 << iota
	// MayPin: the text may create state that lives on the server connection
	// (temp objects, LISTEN, session advisory locks, WITH HOLD cursors,
	// PREPARE, LOAD), so the connection may have to stay with this client.
	MayPin
	// MayUnpin: the text may release such state (DISCARD, UNLISTEN,
	// advisory unlocks, DEALLOCATE, CLOSE, DROP); the pooler should check
	// again whether the connection is still pinned.
	MayUnpin
	// Load: a LOAD statement, whose effect can never be undone.
	Load
	// DropsStatements: DISCARD ALL or DEALLOCATE; protocol-level prepared
	// statements may be gone from the connection.
	DropsStatements
	// Begins: a statement-leading BEGIN or START TRANSACTION.
	Begins
	// Listens: LISTEN, UNLISTEN or DISCARD ALL, which change the channels
	// the session listens to (Unlistens names what was unlistened).
	Listens

	all = SetsSession | MayPin | MayUnpin | Load | DropsStatements | Begins | Listens
)

// names follow the bit order of the constants above.
var names = [...]string{"SetsSession", "MayPin", "MayUnpin", "Load", "DropsStatements", "Begins", "Listens"}

// String names the flags joined by "|" ("SetsSession|MayPin"), or "" for
// none. It is for logs and tests, not the hot path; unknown bits are shown
// in hex so that they are not silently lost.
func (e Effects) String() string {
	var b strings.Builder
	for i, n := range names {
		if e&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(n)
	}
	if rest := e &^ all; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("0x" + strconv.FormatUint(uint64(rest), 16))
	}
	return b.String()
}
