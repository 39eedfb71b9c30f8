package sqlscan

// Scan reports what query (the text of a Query message or of a Parse, maybe
// several statements separated by ';') may do to session state. It makes a
// single pass, never allocates, and returns as soon as every flag is set.
func Scan(query string) Effects {
	l := lexer{s: query}
	var (
		e       Effects
		depth   int     // parenthesis nesting; ';' splits statements only at 0
		start   = true  // the next token leads a statement
		lead    keyword // the keyword that leads the current statement
		pending bool    // lead is SET, DISCARD or START: the next token decides
		temp    bool    // after CREATE or INTO: TEMP or TEMPORARY pins
		prev    token   // the previous token, for calls and UESCAPE
		prevKw  keyword // its keyword, for WITHOUT HOLD
	)
	for {
		t := l.next()
		k := kwNone
		if t.kind == kWord {
			k = lookup(t.text)
		}
		if pending {
			pending = false
			e |= decide(lead, k)
		}
		if temp {
			switch k {
			case kwTemp, kwTemporary:
				e |= MayPin
				temp = false
			case kwOr, kwReplace, kwGlobal, kwLocal, kwUnlogged:
				// CREATE OR REPLACE TEMP VIEW, CREATE GLOBAL TEMP TABLE, INTO LOCAL TEMP t
			default:
				temp = false
			}
		}
		switch t.kind {
		case kEnd:
			return e
		case kSemi:
			if depth == 0 {
				start, lead = true, kwNone
			}
		case kOpen:
			// "(SELECT ...)" still leads with SELECT, so start stays as it is.
			switch prev.kind {
			case kWord:
				e |= call(prev.text, true)
			case kQuoted:
				e |= call(prev.text, false)
			}
			depth++
		case kClose:
			depth = max(depth-1, 0)
			start = false
		case kWord:
			if start {
				start, lead = false, k
				var eff Effects
				eff, pending = leading(k)
				e |= eff
			}
			switch {
			case k == kwCreate || k == kwInto:
				temp = true
			case k == kwHold && lead == kwDeclare && prevKw != kwWithout:
				e |= MayPin // DECLARE c CURSOR WITH HOLD FOR ...
			case k == kwUescape && prev.uni:
				e |= opaque
			case isTempSchema(t.text, true):
				e |= MayPin
			}
		case kQuoted:
			start = false
			if isTempSchema(t.text, false) {
				e |= MayPin
			}
		case kOpaque:
			start = false
			e |= opaque
		default:
			start = false
		}
		prev, prevKw = t, k
		if e == all {
			return e
		}
	}
}

// opaque is what a name spelled with Unicode escapes might do: it could be
// pg_temp or any of the functions call knows.
const opaque = SetsSession | MayPin | MayUnpin

// leading is the effect of a statement's first keyword, and whether the
// token after it decides more (see decide).
func leading(k keyword) (Effects, bool) {
	switch k {
	case kwSet, kwStart:
		return 0, true
	case kwDiscard:
		return MayUnpin, true
	case kwReset:
		return SetsSession, false
	case kwListen:
		return MayPin | Listens, false
	case kwPrepare:
		return MayPin, false
	case kwLoad:
		return MayPin | Load, false
	case kwUnlisten:
		return MayUnpin | Listens, false
	case kwClose, kwDrop:
		return MayUnpin, false
	case kwDeallocate:
		return MayUnpin | DropsStatements, false
	case kwBegin:
		return Begins, false
	}
	return 0, false
}

// decide finishes a leading SET, DISCARD or START from the keyword after it
// (kwNone for any other token, including the end of the text).
func decide(lead, next keyword) Effects {
	switch lead {
	case kwSet:
		// SET LOCAL ends with the transaction; SET TRANSACTION and SET
		// CONSTRAINTS only concern the current one. Everything else (SET
		// SESSION ..., ROLE, TIME ZONE, NAMES, SCHEMA) outlives it.
		if next != kwLocal && next != kwTransaction && next != kwConstraints {
			return SetsSession
		}
	case kwDiscard:
		if next == kwAll {
			return SetsSession | DropsStatements | Listens
		}
	case kwStart:
		if next == kwTransaction {
			return Begins
		}
	}
	return 0
}

// isTempSchema reports pg_temp, the alias of the session's temp schema, or
// its real name pg_temp_N. Unquoted names fold case; quoted ones do not.
func isTempSchema(name string, fold bool) bool {
	const p = "pg_temp"
	if len(name) < len(p) || len(name) > len(p) && name[len(p)] != '_' {
		return false
	}
	if fold {
		return eqFold(name[:len(p)], p)
	}
	return name[:len(p)] == p
}

// calls are the functions whose effect outlives the transaction. The _xact_
// advisory lock variants are released at its end and are not here.
var calls = [...]struct {
	name string
	eff  Effects
}{
	{"set_config", SetsSession},
	{"pg_advisory_lock", MayPin},
	{"pg_advisory_lock_shared", MayPin},
	{"pg_try_advisory_lock", MayPin},
	{"pg_try_advisory_lock_shared", MayPin},
	{"pg_advisory_unlock", MayUnpin},
	{"pg_advisory_unlock_shared", MayUnpin},
	{"pg_advisory_unlock_all", MayUnpin},
}

// call is the effect of calling the function name. Any schema qualifier is
// ignored: pg_catalog.set_config( counts, and so does x.set_config(, a
// harmless false positive. A quoted name ("set_config"() calls the same
// function and is compared exactly.
func call(name string, fold bool) Effects {
	if len(name) < len("set_config") || name[0]|0x20 != 's' && name[0]|0x20 != 'p' {
		return 0
	}
	for _, c := range calls {
		if len(c.name) == len(name) && (fold && eqFold(name, c.name) || !fold && name == c.name) {
			return c.eff
		}
	}
	return 0
}

// eqFold compares an identifier with a lower-case ASCII keyword of the same
// length, folding ASCII case as PostgreSQL does for unquoted names.
func eqFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
