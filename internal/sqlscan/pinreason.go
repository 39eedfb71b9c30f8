package sqlscan

// PinKind is the session state a statement would leave on its server
// connection, as WouldPin sees it.
type PinKind uint8

const (
	NoPin           PinKind = iota
	PinTempTable            // CREATE TEMP ..., SELECT ... INTO TEMP, CREATE ... pg_temp.x (not ON COMMIT DROP)
	PinAdvisoryLock         // pg_advisory_lock(...), pg_try_advisory_lock(...) and their _shared forms
	PinListen               // LISTEN
	PinHoldCursor           // DECLARE ... WITH HOLD
	PinSQLPrepare           // PREPARE (one transaction pooling did not take over)
	PinRole                 // SET [SESSION] ROLE, SET SESSION AUTHORIZATION
	PinLoad                 // LOAD
)

// WouldPin reports what state query would certainly leave on the
// connection that outlives its transaction, for a pooler that refuses
// such statements up front (pin_policy error). It runs only when Scan
// flagged the text (MayPin, Load or SetsSession), and is stricter than
// Scan: a false positive there costs a check at the end of the
// transaction, here it would refuse a harmless statement. So a temp table
// created ON COMMIT DROP, reading pg_temp, SET LOCAL ROLE and SET ROLE NONE
// are not reported; a name spelled with Unicode escapes is not looked
// into (the pooler's check at the end of the transaction still sees what
// it does). The first kind found is returned.
func WouldPin(query string) PinKind {
	l := lexer{s: query}
	var (
		start           = true
		lead            string // the statement's first word
		pos             int    // words since the statement began
		temp, onCommit  bool   // CREATE/INTO ... TEMP seen; ON COMMIT DROP seen
		afterCreateInto bool   // a CREATE or INTO was the previous word: TEMP may follow
		prev, prev2     token
		depth           int
	)
	endStatement := func() PinKind {
		k := NoPin
		if temp && !onCommit {
			k = PinTempTable
		}
		start, lead, pos, temp, onCommit, afterCreateInto = true, "", 0, false, false, false
		return k
	}
	for {
		t := l.next()
		if t.kind != kWord {
			afterCreateInto = false // TEMP must follow at once, as in Scan
		}
		switch t.kind {
		case kEnd:
			return endStatement()
		case kSemi:
			if depth == 0 {
				if k := endStatement(); k != NoPin {
					return k
				}
				prev, prev2 = t, token{}
				continue
			}
		case kOpen:
			if prev.kind == kWord && isLockCall(prev.text) {
				return PinAdvisoryLock
			}
			if prev.kind == kQuoted && isLockCall(prev.text) && isLower(prev.text) {
				return PinAdvisoryLock
			}
			depth++
		case kClose:
			depth = max(depth-1, 0)
			start = false
		case kWord:
			w := t.text
			if start {
				start, lead = false, w
				switch {
				case eqFold(w, "listen"):
					return PinListen
				case eqFold(w, "load"):
					return PinLoad
				}
			}
			pos++
			switch {
			case pos == 2 && eqFold(lead, "prepare") && !eqFold(w, "transaction"):
				return PinSQLPrepare
			case pos == 2 && eqFold(lead, "set") && eqFold(w, "role"):
				if n := l; !nextIsWord(&n, "none") {
					return PinRole
				}
			case pos == 3 && eqFold(lead, "set") && eqFold(prev.text, "session") && prev.kind == kWord:
				if eqFold(w, "authorization") {
					return PinRole
				}
				if eqFold(w, "role") {
					if n := l; !nextIsWord(&n, "none") {
						return PinRole
					}
				}
			case eqFold(w, "hold") && eqFold(lead, "declare") && !(prev.kind == kWord && eqFold(prev.text, "without")):
				return PinHoldCursor
			case afterCreateInto && (eqFold(w, "temp") || eqFold(w, "temporary")):
				temp = true
			case eqFold(w, "drop") && prev.kind == kWord && eqFold(prev.text, "commit") && prev2.kind == kWord && eqFold(prev2.text, "on"):
				onCommit = true
			case isTempSchema(w, true) && eqFold(lead, "create"):
				temp = true
			}
			switch {
			case eqFold(w, "create") || eqFold(w, "into"):
				afterCreateInto = true
			case afterCreateInto && (eqFold(w, "or") || eqFold(w, "replace") || eqFold(w, "global") || eqFold(w, "local") || eqFold(w, "unlogged")):
			default:
				afterCreateInto = false
			}
		case kQuoted:
			start = false
			if isTempSchema(t.text, false) && eqFold(lead, "create") {
				temp = true
			}
		default:
			start = false
		}
		prev2, prev = prev, t
	}
}

// nextIsWord reports whether the next token of l is the word w.
func nextIsWord(l *lexer, w string) bool {
	t := l.next()
	return t.kind == kWord && eqFold(t.text, w)
}

// isLockCall reports the session-level advisory lock functions (not the
// _xact_ ones, released with the transaction).
func isLockCall(name string) bool {
	for _, c := range calls {
		if c.eff == MayPin && eqFold(name, c.name) {
			return true
		}
	}
	return false
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}
