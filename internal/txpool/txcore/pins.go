package txcore

import (
	"strings"
	"unicode/utf8"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// Explainable pins: which statement made a client hold its server
// connection, how the client can end it, and pool.pin_policy error,
// which refuses such statements instead.

// PinPolicy tells whether the client's pool refuses statements that would
// pin (pool.pin_policy error). It is asked only when the lexer flags a
// statement, so that a RELOAD applies to connected clients without a
// cost per message; txpool's Session answers it.
type PinPolicy interface{ RefusePins() bool }

// Pin reasons, as backend.Snapshot names them (txpool's tests check that
// they agree), indexed by sqlscan.PinKind.
var pinReasons = [...]string{
	sqlscan.PinTempTable:    "temp_table",
	sqlscan.PinAdvisoryLock: "advisory_lock",
	sqlscan.PinListen:       "listen",
	sqlscan.PinHoldCursor:   "hold_cursor",
	sqlscan.PinSQLPrepare:   "sql_prepare",
	sqlscan.PinRole:         "set_role",
	sqlscan.PinLoad:         "load",
}

// PinReason is the metric label of a pin kind.
func PinReason(k sqlscan.PinKind) string {
	if int(k) < len(pinReasons) {
		return pinReasons[k]
	}
	return ""
}

// pinTexts say, per kind, what pins (for the refusal) and what to do
// instead.
var pinTexts = [...]struct{ what, instead string }{
	sqlscan.PinTempTable:    {"a temporary table", "use a regular table or CREATE TEMP TABLE ... ON COMMIT DROP inside a transaction"},
	sqlscan.PinAdvisoryLock: {"a session-level advisory lock", "use pg_advisory_xact_lock inside a transaction"},
	sqlscan.PinListen:       {"LISTEN", "listen on a connection of a database in pool_mode session"},
	sqlscan.PinHoldCursor:   {"a cursor WITH HOLD", "use a cursor without HOLD inside a transaction"},
	sqlscan.PinSQLPrepare:   {"PREPARE sent with other statements or through the extended protocol", "send PREPARE alone in a simple query, or use protocol-level prepared statements"},
	sqlscan.PinRole:         {"SET ROLE", "use SET LOCAL ROLE inside a transaction"},
	sqlscan.PinLoad:         {"LOAD", "preload the library with session_preload_libraries"},
}

// pinReleases say how a client ends a pin, by reason.
var pinReleases = map[string]string{
	"temp_table":          "DROP the temporary objects, DISCARD TEMP or DISCARD ALL",
	"advisory_lock":       "pg_advisory_unlock(...), pg_advisory_unlock_all() or DISCARD ALL",
	"listen":              "UNLISTEN or DISCARD ALL",
	"hold_cursor":         "CLOSE the cursor or DISCARD ALL",
	"sql_prepare":         "DEALLOCATE or DISCARD ALL",
	"set_role":            "RESET ROLE or DISCARD ALL",
	"load":                "only the end of the session",
	"unsupported_setting": "RESET the setting or DISCARD ALL",
}

// PinRelease says how a client ends a pin of reason (for logs and SHOW
// PINS).
func PinRelease(reason string) string {
	if r, ok := pinReleases[reason]; ok {
		return r
	}
	return "DISCARD ALL or the end of the session"
}

// pinRefusal is the error message and hint of a statement refused under
// pin_policy error.
func (c *Client) pinRefusal(k sqlscan.PinKind) (message, hint string) {
	mode := "transaction"
	if c.PerStatement {
		mode = "statement"
	}
	t := pinTexts[k]
	return "sluice: " + t.what + " would pin this client to a server connection (pool_mode " + mode +
			", pin_policy error); " + t.instead + ", or use pool_mode session",
		"the statement was not run; pool.pin_policy pin lets such statements hold a server connection while their state lasts"
}

// pinnable are the effects after which a statement may pin.
const pinnable = sqlscan.MayPin | sqlscan.Load | sqlscan.SetsSession

// refusal returns what pins in text if the client's pool refuses such
// statements, or NoPin.
func (c *Client) refusal(e sqlscan.Effects, text string) sqlscan.PinKind {
	if e&pinnable == 0 || c.Policy == nil || !c.Policy.RefusePins() {
		return sqlscan.NoPin
	}
	k := sqlscan.WouldPin(text)
	if k == sqlscan.PinListen && c.ListensUnpinned {
		return sqlscan.NoPin
	}
	return k
}

// refuseQuery sends, in place of the client's Query, one that fails on
// the server with 0A000 saying why, so that a transaction it is in fails
// as on any error and nothing is left on the connection.
func (c *Client) refuseQuery(a *Books, k sqlscan.PinKind) {
	msg, hint := c.pinRefusal(k)
	q, _ := raiseQuery("0A000", msg, hint) // sluice's own texts never hold the quoting tag
	c.emitQuery(a, q)
}

// refuseBind sends, in place of the client's Bind of a statement that
// would pin, a Bind of a statement that fails with 0A000 when executed
// (prepared on the connection like any of the client's); the client's
// parameters are dropped (dropRest), so the Bind always matches.
func (c *Client) refuseBind(a *Books, portal []byte, k sqlscan.PinKind) {
	msg, hint := c.pinRefusal(k)
	q, _ := raiseQuery("0A000", msg, hint)
	st := &stmt{query: []byte(q), params: []byte{0, 0}}
	st.srv = c.serverName(a.name, st.query, st.params)
	c.ensurePrepared(a, st)
	c.Out = appendBindHead(c.Out, portal, st.srv, 6)
	c.Out = append(c.Out, 0, 0, 0, 0, 0, 0) // no formats, no parameters, no result formats
	a.LastSent = 'B'
}

// maxPinCause bounds the statement text kept to explain a pin.
const maxPinCause = 60

// notePinCause keeps the beginning of a statement that may pin (effects
// e), to name it when a pin appears (log, SHOW PINS). Only the text the
// client sent, never parameter values; allocated only when the text
// changes. Of the statements that only set settings, which are common
// and often differ in their values, only a SET ROLE is kept.
func (c *Client) notePinCause(e sqlscan.Effects, text string) {
	if e&(sqlscan.MayPin|sqlscan.Load) == 0 && sqlscan.WouldPin(text) != sqlscan.PinRole {
		return
	}
	text = strings.TrimSpace(text)
	cut := len(text) > maxPinCause
	if cut {
		n := maxPinCause
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	if c.PinCause == text || cut && strings.TrimSuffix(c.PinCause, "...") == text {
		return
	}
	if cut {
		c.PinCause = text + "..."
	} else {
		c.PinCause = strings.Clone(text)
	}
}
